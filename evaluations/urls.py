from django.urls import path

from . import views

app_name = "evaluations"
urlpatterns = [
    path("", views.evaluation_list_view, name="list"),
    path("<int:pk>/", views.evaluation_detail_view, name="detail"),
    path("tasks/<int:task_id>/new/", views.evaluation_create_view, name="create"),
]
