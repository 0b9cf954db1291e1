"""Users and groups for managers: they add people, reset passwords, and put them in groups and projects.

A manager is not a superuser: they cannot grant permissions (neither a user's own nor a group's), make anyone
a superuser, or change a superuser's account. Superusers see Django's pages unchanged.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from clusters.models import Project

User = get_user_model()

# What only a superuser may change on an account.
SUPERUSER_FIELDS = ("is_superuser", "user_permissions")


class ProjectMembershipInline(admin.TabularInline):
    """The projects a user belongs to, on the user's own page."""

    model = Project.members.through
    extra = 1
    verbose_name = Project._meta.verbose_name
    verbose_name_plural = Project._meta.verbose_name_plural


admin.site.unregister(User)


@admin.register(User)
class ManagedUserAdmin(UserAdmin):
    inlines = [ProjectMembershipInline]

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return fields if request.user.is_superuser else (*fields, *SUPERUSER_FIELDS)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups" and not request.user.is_superuser:
            # Only groups that grant nothing beyond what the manager holds: no way up through a group.
            held = Permission.objects.filter(Q(user=request.user) | Q(group__user=request.user))
            kwargs["queryset"] = Group.objects.exclude(permissions__in=Permission.objects.exclude(pk__in=held))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []
