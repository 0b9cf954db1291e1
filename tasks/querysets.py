from django.db import models

from clusters.models import Project
from clusters.querysets import is_manager

from .states import HOLDING, Status


class TaskQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Tasks of the projects the user is a member of; managers see all."""
        if not (user and user.is_authenticated):
            return self.none()
        if is_manager(user):
            return self.all()
        # A subquery on the membership table rather than a join through projects: the count of a long
        # list then reads the project index alone.
        memberships = Project.members.through.objects.filter(user_id=user.pk).values("project_id")
        return self.filter(project_id__in=memberships)

    def holding(self):
        """Tasks whose instances hold GPUs right now."""
        return self.filter(status__in=HOLDING)

    def queued(self):
        return self.filter(status=Status.QUEUED)

    def in_queue_order(self):
        """SPEC's queue order: the pinned task first, then by the time it was queued."""
        return self.queued().order_by("-pinned", "queued_at", "id")


class TaskInstanceQuerySet(models.QuerySet):
    def visible_to(self, user):
        from .models import Task

        return self.filter(task__in=Task.objects.visible_to(user))

    def holding(self):
        """Instances that count against their machine: those of tasks holding GPUs."""
        return self.filter(task__status__in=HOLDING)
