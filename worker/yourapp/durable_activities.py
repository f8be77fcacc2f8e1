"""The tutorial's activities, printing what they do so the demo shows each step."""

from django_durable import activity
from django_durable.registry import register


def _say(text: str) -> None:
    info = activity.info()
    print(f"    [activity {info.activity_name} attempt {info.attempt}] {text}", flush=True)


@register.activity()
def send_welcome_email(user_id: int):
    _say(f"sending the welcome email to user {user_id}")
    return {"status": "sent", "user_id": user_id}


@register.activity()
def compute_score(user_id: int):
    _say(f"computing the score of user {user_id}")
    return {"score": 42}
