from django.db import models

from tasks.models import Task


class EvaluationQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Runs of the tasks the user may see."""
        return self.filter(task__in=Task.objects.visible_to(user))

    def active(self):
        return self.filter(status__in=["pending", "running"])

    def finished(self):
        return self.filter(status__in=["succeeded", "failed"])
