"""The benchmark's workflows: one activity (throughput) and one signal wait (latency)."""

from django_durable import register


@register.workflow()
async def one_activity(ctx, i: int):
    """Run `bench.noop` once and return its result (`i`)."""
    return await ctx.run_activity("bench.noop", i)


@register.workflow()
async def wait_for_signal(ctx):
    """Suspend until the signal "go" arrives and return its payload."""
    return await ctx.wait_signal("go")
