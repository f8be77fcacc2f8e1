from django.http import JsonResponse

from django_durable import start_workflow


async def start_view(request):
    """An async view that starts a workflow with `await`, as users will."""
    execution_id = await start_workflow("yourapp.onboard_user", user_id=int(request.GET["user"]))
    return JsonResponse({"execution_id": str(execution_id)})
