from django.db import models

from clusters.models import Project
from clusters.permissions import is_manager

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


class TaskRunQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Runs of the tasks the user may see."""
        tasks = self.model._meta.get_field("task").related_model.objects
        return self.filter(task__in=tasks.visible_to(user))


class TaskInstanceQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Instances of the tasks the user may see."""
        tasks = self.model._meta.get_field("task").related_model.objects
        return self.filter(task__in=tasks.visible_to(user))

    def holding(self):
        """Instances that count against their machine: those of the current run of a task holding GPUs."""
        return self.filter(task__status__in=HOLDING, run_id=models.F("task__current_run_id"))

    def of_current_run(self):
        return self.filter(run_id=models.F("task__current_run_id"))
