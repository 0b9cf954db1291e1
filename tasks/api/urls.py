from rest_framework.routers import SimpleRouter

from .views import InstanceViewSet, TaskViewSet

router = SimpleRouter()
router.register("tasks", TaskViewSet, basename="task")
router.register("instances", InstanceViewSet, basename="instance")

urlpatterns = router.urls
