"""Two versions of the code for the rolling-deploy tests.

`testapp.new_flow` and its activity `testapp.new_step` exist only in the "new" code: a
process started with DURABLE_TEST_NEW_CODE=1. A worker without it stands for one still
running the old code, which must leave them alone.
"""

import os

from django_durable import register

from .models import Effect

if os.environ.get("DURABLE_TEST_NEW_CODE") == "1":

    @register.activity()
    def new_step(n: int) -> int:
        Effect.objects.create(name="new_step", key=str(n))
        return n * 10

    @register.workflow()
    async def new_flow(ctx, n: int) -> int:
        return await ctx.run_activity("testapp.new_step", n)
