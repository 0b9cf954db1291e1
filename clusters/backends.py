"""Django's ``ModelBackend`` with a user's permissions read in one query instead of two.

``ModelBackend.get_all_permissions`` asks for the user's own permissions and then for their groups'; every
request that asks ``is_manager`` (the task list, the queue, the sidebar) paid both. Here one ``UNION`` reads them
together into the same per-request cache (``user._perm_cache``), so ``has_perm`` answers as Django's does.

It answers permissions only: Django's own backend, listed after it, still signs people in (so a login checks its
password once, and sessions keep naming Django's backend); it finds the cache filled and asks nothing more.
"""

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission


class PermissionBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        return None  # Django's ModelBackend does it, once

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if user_obj.is_superuser:
            return super().get_all_permissions(user_obj, obj)
        if not hasattr(user_obj, "_perm_cache"):
            fields = ("content_type__app_label", "codename")
            own = Permission.objects.filter(user=user_obj).order_by().values_list(*fields)
            of_groups = Permission.objects.filter(group__user=user_obj).order_by().values_list(*fields)
            user_obj._perm_cache = {f"{app_label}.{codename}" for app_label, codename in own.union(of_groups)}
        return user_obj._perm_cache
