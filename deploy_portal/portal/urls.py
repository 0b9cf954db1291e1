"""The portal's pages (namespace ``portal``) and the evaluation pages (namespace ``evaluations``)."""

from django.urls import path, re_path

from . import api_keys, evaluations, health, notifications, operations, queue, tokens, utilisation
from . import task_pages as tasks

app_name = "portal"

urlpatterns = [
    path("", tasks.task_list, name="task-list"),
    path("tasks/rows/", tasks.task_rows, name="task-rows"),
    path("tasks/new/", tasks.task_create, name="task-create"),
    path("tasks/<int:pk>/", tasks.task_detail, name="task-detail"),
    path("tasks/<int:pk>/live/", tasks.task_live, name="task-live"),
    path("tasks/<int:pk>/models/", tasks.task_models, name="task-models"),
    path("tasks/<int:pk>/instances/", tasks.task_instances, name="task-instances"),
    path("tasks/<int:pk>/instances/live/", tasks.task_instances_live, name="task-instances-live"),
    path("tasks/<int:pk>/runs/", tasks.task_runs, name="task-runs"),
    path("tasks/<int:pk>/copy/", tasks.task_copy, name="task-copy"),
    path("tasks/<int:pk>/edit/", tasks.task_edit, name="task-edit"),
    re_path(
        rf"^tasks/(?P<pk>\d+)/(?P<action>{'|'.join(operations.ACTIONS)})/$",
        operations.task_operation, name="task-operation",
    ),
    path("instances/<int:pk>/log/", tasks.instance_log, name="instance-log"),
    path("instances/<int:pk>/log/download/", tasks.instance_log_download, name="instance-log-download"),
    path("virtual-clusters/info/", tasks.vc_info, name="vc-info"),
    path("queue/", queue.queue_status, name="queue"),
    path("health/", health.health_banner, name="health-banner"),
    path("queues/", queue.queue_page, name="queue-page"),
    path("queues/live/", queue.queue_page_live, name="queue-page-live"),
    path("token/", tokens.token_page, name="token"),
    path("token/new/", tokens.token_create, name="token-create"),
    path("token/revoke/", tokens.token_revoke, name="token-revoke"),
    path("keys/", api_keys.api_keys, name="api-keys"),
    path("keys/<int:pk>/revoke/", api_keys.api_key_revoke_view, name="api-key-revoke"),


    path("utilisation/", utilisation.utilisation_index, name="utilisation-index"),
    path("virtual-clusters/<int:pk>/utilisation/", utilisation.utilisation, name="utilisation"),
    path("gpu-hours/", utilisation.gpu_hours, name="gpu-hours"),
    path("idle-deployments/", utilisation.idle_deployments, name="idle-deployments"),
    path("notifications/", notifications.notification_settings, name="notifications"),
    path("notifications/webhooks/<int:pk>/toggle/", notifications.webhook_toggle, name="webhook-toggle"),
]

evaluation_urls = ([
    path("", evaluations.evaluation_list_view, name="list"),
    path("<int:pk>/", evaluations.evaluation_detail_view, name="detail"),
    path("tasks/<int:task_id>/new/", evaluations.evaluation_create_view, name="create"),
], "evaluations")
