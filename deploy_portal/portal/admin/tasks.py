"""Tasks for managers: filters, the timeline, and stop / pin / unpin / force start as admin actions.

Admin edits a task's configuration through the same service and validation as the portal
(on behalf of the task's owner); it never creates tasks (that is the portal's and the API's job).
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from deploy_portal.messages import render
from scheduler.force_start import task_force_start_preview
from scheduler.services import perform
from tasks.exceptions import OperationRefused
from tasks.models import Task, TaskEvent, TaskInstance, TaskMount
from tasks.services import CONFIG_FIELDS, task_delete, task_update, task_update_check
from tasks.states import OPERATIONS, Action, state_allows


class TaskAdminForm(forms.ModelForm):
    class Meta:
        model = Task
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        task = self.instance
        if task.pk and not self.errors:
            data = {f: cleaned[f] for f in CONFIG_FIELDS if f in cleaned}
            try:
                task_update_check(task=task, user=task.owner, data=data)
            except ValidationError as error:
                for field, field_errors in error.message_dict.items():
                    self.add_error(field if field in self.fields else None, field_errors)
        return cleaned


class TaskMountInline(admin.TabularInline):
    model = TaskMount
    extra = 0
    fields = ("storage", "mount_path")

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request, obj=None):
        return False


@admin.display(description=gettext_lazy("message"))
def _said_message(obj):
    return render(obj.message)


class TaskInstanceInline(admin.TabularInline):
    model = TaskInstance
    extra = 0
    fields = (
        "run", "index", "node_name", "gpu_type", "gpu_count", "gpu_indices", "status", "restarts", "handle", "said_message",
    )
    readonly_fields = fields

    said_message = staticmethod(_said_message)
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class TaskEventInline(admin.TabularInline):
    model = TaskEvent
    extra = 0
    fields = ("created_at", "operation", "from_status", "to_status", "actor", "said_message")
    readonly_fields = fields
    can_delete = False

    said_message = staticmethod(_said_message)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskAdminForm
    list_display = (
        "name", "status", "pinned", "project", "virtual_cluster", "sku_count", "replicas", "owner", "queued_at",
        "started_at",
    )
    list_filter = ("status", "pinned", "task_type", "virtual_cluster", "project")
    list_select_related = ("project", "virtual_cluster", "owner")
    search_fields = ("name", "image", "owner__username")
    date_hierarchy = "created_at"
    readonly_fields = (
        "project", "task_type", "owner", "status", "said_status_message", "pinned", "queued_at", "started_at",
        "endpoint_port", "current_run", "created_at", "updated_at",
    )
    exclude = ("status_message",)  # read in the reader's language: said_status_message
    inlines = [TaskMountInline, TaskInstanceInline, TaskEventInline]
    actions = ["stop_tasks", "pin_task", "unpin_task", "force_start_task"]

    def has_add_permission(self, request):
        return False

    @admin.display(description=gettext_lazy("status message"))
    def said_status_message(self, obj):
        return render(obj.status_message)

    def has_delete_permission(self, request, obj=None):
        # Only a task that holds nothing and is not queued may go (the service checks again, under lock).
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or state_allows(Action.DELETE, obj.status))

    def delete_model(self, request, obj):
        task_delete(task=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for task in queryset:
            try:
                task_delete(task=task, user=request.user)
            except OperationRefused as refused:
                self.message_user(request, refused.message, messages.ERROR)

    def save_model(self, request, obj, form, change):
        """Through the service: the edit is validated and recorded as the manager's."""
        data = {field: form.cleaned_data[field] for field in form.changed_data if field in CONFIG_FIELDS}
        task_update(task=obj, user=request.user, data=data)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except OperationRefused as refused:
            # The form validated, but the task moved meanwhile (it was started): nothing was saved.
            self.message_user(request, refused.message, messages.ERROR)
            return HttpResponseRedirect(request.path)

    def _each(self, request, queryset, action):
        """Do ``action`` to each selected task through its service; refusals are said, the rest go on."""
        for task in queryset:
            try:
                perform(action, task=task, user=request.user)
            except (OperationRefused, PermissionDenied) as refused:
                self.message_user(request, str(getattr(refused, "message", refused)), messages.ERROR)
            else:
                self.message_user(request, OPERATIONS[action].done % {"task": task.name}, messages.SUCCESS)

    @admin.action(description=gettext_lazy("Stop the selected tasks"))
    def stop_tasks(self, request, queryset):
        self._each(request, queryset, Action.STOP)

    @admin.action(description=gettext_lazy("Pin the selected queued task"), permissions=["pin"])
    def pin_task(self, request, queryset):
        self._each(request, queryset, Action.PIN)

    @admin.action(description=gettext_lazy("Unpin the selected task"), permissions=["pin"])
    def unpin_task(self, request, queryset):
        self._each(request, queryset, Action.UNPIN)

    @admin.action(description=gettext_lazy("Force start the pinned task…"), permissions=["force_start"])
    def force_start_task(self, request, queryset):
        """Shows the victims first; the confirmation posts back to this action with ``confirm``."""
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one pinned task to force start."), messages.ERROR)
            return None
        task = queryset.get()
        try:
            if request.POST.get("confirm") == "yes":
                expected = [int(v) for v in request.POST.getlist("victim") if v.isascii() and v.isdigit()]
                perform(Action.FORCE_START, task=task, user=request.user, expected_victims=expected)
                self.message_user(request, OPERATIONS[Action.FORCE_START].done % {"task": task.name}, messages.SUCCESS)
                return None
            preview = task_force_start_preview(task=task, user=request.user)
        except (OperationRefused, PermissionDenied) as refused:
            self.message_user(request, str(getattr(refused, "message", refused)), messages.ERROR)
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "task": task,
            "preview": preview,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "title": _("Force start “%(task)s”?") % {"task": task.name},
        }
        return TemplateResponse(request, "admin/tasks/task/force_start_confirm.html", context)

    def has_pin_permission(self, request):
        return request.user.has_perm(OPERATIONS[Action.PIN].permission)

    def has_force_start_permission(self, request):
        return request.user.has_perm(OPERATIONS[Action.FORCE_START].permission)


@admin.register(TaskEvent)
class TaskEventAdmin(admin.ModelAdmin):
    """The timeline, read-only."""

    list_display = ("created_at", "task", "operation", "from_status", "to_status", "actor", "said_message")
    list_filter = ("operation", "to_status")
    list_select_related = ("task", "actor")
    search_fields = ("task__name", "actor__username")
    date_hierarchy = "created_at"

    said_message = staticmethod(_said_message)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
