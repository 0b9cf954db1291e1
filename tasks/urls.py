"""The portal's pages."""

from django.urls import path, re_path

from . import views

app_name = "portal"

urlpatterns = [
    path("", views.task_list, name="task-list"),
    path("tasks/rows/", views.task_rows, name="task-rows"),
    path("tasks/new/", views.task_create, name="task-create"),
    path("tasks/<int:pk>/", views.task_detail, name="task-detail"),
    path("tasks/<int:pk>/live/", views.task_live, name="task-live"),
    path("tasks/<int:pk>/instances/", views.task_instances, name="task-instances"),
    path("tasks/<int:pk>/instances/live/", views.task_instances_live, name="task-instances-live"),
    path("tasks/<int:pk>/copy/", views.task_copy, name="task-copy"),
    path("tasks/<int:pk>/edit/", views.task_edit, name="task-edit"),
    re_path(
        r"^tasks/(?P<pk>\d+)/(?P<action>start|stop|pin|unpin|force_start|delete)/$",
        views.task_operation, name="task-operation",
    ),
    path("instances/<int:pk>/log/", views.instance_log, name="instance-log"),
    path("instances/<int:pk>/log/download/", views.instance_log_download, name="instance-log-download"),
    path("virtual-clusters/info/", views.vc_info, name="vc-info"),
    path("queue/", views.queue_status, name="queue"),
]
