from django.urls import path

from .views import QueueView

urlpatterns = [
    path("queue/", QueueView.as_view(), name="queue"),
]
