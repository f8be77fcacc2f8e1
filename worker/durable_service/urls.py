from django.contrib import admin
from django.urls import path

from yourapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("onboard/<int:user_id>/", views.onboard),
    path("executions/<uuid:execution_id>/", views.execution_status),
]
