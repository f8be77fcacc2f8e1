# yourapp/durable_workflows.py
from django_durable.registry import register

@register.workflow()
def onboard_user(ctx, user_id: int):
    ctx.run_activity("yourapp.send_welcome_email", user_id)
    ctx.sleep(3600)  # durable timer; no thread blocked
    score = ctx.run_activity("yourapp.compute_score", user_id)
    return {"ok": True, "score": score["score"]}

# yourapp/durable_workflows.py
@register.workflow()
def example_with_signal(ctx):
    ctx.sleep(0)
    payload = ctx.wait_signal("go")  # will pause until signal arrives
    return {"sig": payload}


# yourapp/durable_workflows.py
@register.workflow()
async def onboard_user_async(ctx, user_id: int):
    await ctx.run_activity("yourapp.send_welcome_email", user_id)
    await ctx.sleep(3600)  # durable timer; no thread blocked
    score = await ctx.run_activity("yourapp.compute_score", user_id)
    return {"ok": True, "score": score["score"]}
