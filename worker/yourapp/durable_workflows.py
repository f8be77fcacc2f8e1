"""The tutorial's workflows, in its plain `def` style and in `async def` style."""

import asyncio

from django_durable.registry import register


@register.workflow()
def onboard_user(ctx, user_id: int, wait_seconds: float = 3600):
    ctx.run_activity("yourapp.send_welcome_email", user_id)
    ctx.sleep(wait_seconds)  # durable timer; no thread blocked
    score = ctx.run_activity("yourapp.compute_score", user_id)
    return {"ok": True, "score": score["score"]}


@register.workflow()
async def onboard_user_async(ctx, user_id: int, wait_seconds: float = 3600):
    await ctx.run_activity("yourapp.send_welcome_email", user_id)
    await ctx.sleep(wait_seconds)
    email, score = await asyncio.gather(
        ctx.run_activity("yourapp.send_welcome_email", user_id + 1000),
        ctx.run_activity("yourapp.compute_score", user_id),
    )
    return {"ok": True, "score": score["score"], "second_email": email["status"]}


@register.workflow()
def example_with_signal(ctx):
    ctx.sleep(0)
    payload = ctx.wait_signal("go")  # will pause until signal arrives
    return {"sig": payload}
