from django.http import Http404, JsonResponse

from django_durable import start_workflow
from django_durable.models import WorkflowExecution


async def onboard(request, user_id: int):
    """Start the tutorial's workflow from an async view, as a web request would."""
    execution_id = await start_workflow("yourapp.onboard_user", user_id=user_id)
    return JsonResponse({"execution_id": str(execution_id)}, status=202)


async def execution_status(request, execution_id):
    try:
        execution = await WorkflowExecution.objects.aget(pk=execution_id)
    except WorkflowExecution.DoesNotExist:
        raise Http404("No such execution.") from None
    return JsonResponse(
        {"status": execution.status, "result": execution.result, "error": execution.error}
    )
