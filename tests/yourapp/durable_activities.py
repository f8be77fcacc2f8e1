# yourapp/durable_activities.py
from django_durable.registry import register

@register.activity()
def send_welcome_email(user_id: int):
    # Do your side effect here; must return JSON-serializable data
    return {"status": "sent", "user_id": user_id}

@register.activity()
def compute_score(user_id: int):
    return {"score": 42}
