from django.urls import path

from . import views

urlpatterns = [
    path("tasks/<int:task_id>/evaluations/", views.TaskEvaluationList.as_view(), name="api-task-evaluations"),
    path("evaluations/<int:pk>/", views.EvaluationDetail.as_view(), name="api-evaluation-detail"),
]
