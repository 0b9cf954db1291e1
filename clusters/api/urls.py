from rest_framework.routers import SimpleRouter

from .views import ProjectViewSet, StorageViewSet, VirtualClusterViewSet

router = SimpleRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register("virtual-clusters", VirtualClusterViewSet, basename="virtual-cluster")
router.register("storages", StorageViewSet, basename="storage")

urlpatterns = router.urls
