"""Who may see and use what: each scope is written once, here."""

from django.db import models
from django.db.models import Q

from .permissions import is_manager


class ProjectQuerySet(models.QuerySet):
    def of_member(self, user):
        if not (user and user.is_authenticated):
            return self.none()
        return self.filter(members=user)


class VirtualClusterQuerySet(models.QuerySet):
    def usable_by(self, user):
        """VCs granted to the user directly or through one of their groups."""
        if not (user and user.is_authenticated):
            return self.none()
        granted = Q(users=user) | Q(groups__in=user.groups.all())
        return self.filter(pk__in=self.model.objects.filter(granted).values("pk"))

    def visible_to(self, user):
        """What a user may look at: managers see every VC, everyone else what they may use."""
        if is_manager(user):
            return self.all()
        return self.usable_by(user)


class PriorityClassQuerySet(models.QuerySet):
    def usable_by(self, user):
        """Classes open to everyone (granted to nobody), granted to the user or a group of theirs; managers: all."""
        if not (user and user.is_authenticated):
            return self.none()
        if is_manager(user):
            return self.all()
        granted = Q(users=user) | Q(groups__in=user.groups.all())
        open_to_all = Q(users__isnull=True, groups__isnull=True)
        return self.filter(pk__in=self.model.objects.filter(granted | open_to_all).values("pk"))


class ProjectQuotaQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The quotas of the VCs the user may look at."""
        clusters = self.model._meta.get_field("virtual_cluster").related_model.objects.visible_to(user)
        return self.filter(virtual_cluster__in=clusters)


class NodeQuerySet(models.QuerySet):
    def schedulable(self):
        return self.filter(schedulable=True)


class StorageQuerySet(models.QuerySet):
    def mountable_by(self, user, project=None):
        """Storages granted to the user, or to the given project (if the user is its member)."""
        if not (user and user.is_authenticated):
            return self.none()
        granted = Q(users=user)
        if project is not None:
            granted |= Q(projects=project)
        else:
            granted |= Q(projects__members=user)
        return self.filter(pk__in=self.model.objects.filter(granted).values("pk"))
