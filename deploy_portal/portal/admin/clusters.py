"""Managers set up the GPU world here: projects, virtual clusters and machines, storages, grants."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils.translation import gettext_lazy as _

from clusters.models import Node, PriorityClass, Project, ProjectQuota, Storage, VirtualCluster
from scheduler.scheduling import node_changed, schedule_virtual_cluster
from tasks.models import TaskInstance


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "member_count", "task_count")
    search_fields = ("name", "description", "members__username")
    filter_horizontal = ("members",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            _members=Count("members", distinct=True), _tasks=Count("tasks", distinct=True)
        )

    @admin.display(description=_("members"), ordering="_members")
    def member_count(self, obj):
        return obj._members

    @admin.display(description=_("tasks"), ordering="_tasks")
    def task_count(self, obj):
        return obj._tasks


class NodeForm(forms.ModelForm):
    """A machine's capacity cannot drop below what its running instances use."""

    class Meta:
        model = Node
        fields = "__all__"

    def clean_sku_capacity(self):
        capacity = self.cleaned_data["sku_capacity"]
        if self.instance.pk:
            # Under the VC's lock (the admin saves in one transaction): no placement lands between this check and
            # the save, as every placement locks the VC's row first.
            VirtualCluster.objects.select_for_update().filter(pk=self.instance.virtual_cluster_id).exists()
            used = TaskInstance.objects.holding().filter(node=self.instance).aggregate(s=Sum("sku_count"))["s"] or 0
            if capacity < used:
                raise forms.ValidationError(
                    _("Tasks holding GPUs use %(used)s SKUs of this machine; stop them before shrinking it.")
                    % {"used": used}
                )
        return capacity


class NodeInline(admin.TabularInline):
    model = Node
    form = NodeForm
    extra = 0
    fields = ("name", "gpu_type", "sku_capacity", "schedulable")


class ProjectQuotaInline(admin.TabularInline):
    model = ProjectQuota
    extra = 0
    fields = ("project", "guaranteed_skus", "borrowing_limit")
    autocomplete_fields = ("project",)


@admin.register(VirtualCluster)
class VirtualClusterAdmin(admin.ModelAdmin):
    list_display = (
        "name", "gpu_type", "sku_bundle", "queue_policy", "reclaim", "endpoint_host", "skus_used", "queued",
    )
    list_filter = ("queue_policy", "gpu_type")
    search_fields = ("name", "gpu_type")
    filter_horizontal = ("users", "groups")
    inlines = [NodeInline, ProjectQuotaInline]
    fieldsets = (
        (None, {"fields": ("name", "gpu_type", "queue_policy", "reclaim", "endpoint_host", "run_as_non_root")}),
        (_("SKU bundle"), {"fields": ("sku_gpus", "sku_cpus", "sku_memory_gib")}),
        (_("Grants"), {"fields": ("users", "groups")}),
    )

    @admin.display(description=_("SKU bundle"))
    def sku_bundle(self, obj):
        return obj.sku_description

    def get_queryset(self, request):
        def per_vc(queryset, total):
            return Subquery(
                queryset.filter(**{total[0]: OuterRef("pk")}).order_by().values(total[0])
                .annotate(total=Sum(total[1])).values("total")
            )

        return super().get_queryset(request).annotate(
            _capacity=per_vc(Node.objects.schedulable(), ("virtual_cluster", "sku_capacity")),
            _used=per_vc(TaskInstance.objects.holding(), ("node__virtual_cluster", "sku_count")),
            _queued=Count("tasks", filter=Q(tasks__status="queued"), distinct=True),
        )

    @admin.display(description=_("SKUs used / schedulable"))
    def skus_used(self, obj):
        return f"{obj._used or 0} / {obj._capacity or 0}"

    @admin.display(description=_("queued"), ordering="_queued")
    def queued(self, obj):
        return obj._queued

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        _machines_changed(form.instance)


def _machines_changed(virtual_cluster):
    """Machines were added, resized, removed or (un)cordoned: re-examine the VC's queue now."""
    schedule_virtual_cluster(virtual_cluster_id=virtual_cluster.pk)


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    form = NodeForm
    list_display = ("name", "virtual_cluster", "gpu_type", "sku_capacity", "schedulable")
    list_filter = ("virtual_cluster", "gpu_type", "schedulable")
    list_editable = ("schedulable",)
    search_fields = ("name",)
    actions = ["cordon", "uncordon"]

    def get_readonly_fields(self, request, obj=None):
        # A machine stays in its virtual cluster: moving it would carry running instances into another queue.
        return ("virtual_cluster",) if obj is not None else ()

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        node_changed(node=obj)

    def has_delete_permission(self, request, obj=None):
        # A machine goes once nothing holds it; the instances of earlier runs keep its name.
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or not obj.instances.holding().exists())

    def delete_model(self, request, obj):
        virtual_cluster = obj.virtual_cluster
        super().delete_model(request, obj)
        _machines_changed(virtual_cluster)  # a queued task may no longer ever fit

    def delete_queryset(self, request, queryset):
        held = queryset.filter(instances__in=TaskInstance.objects.holding()).distinct()
        for node in held:
            self.message_user(
                request, _("%(node)s holds running instances: stop them before deleting it.") % {"node": node.name},
                messages.ERROR,
            )
        queryset = queryset.exclude(pk__in=held.values("pk"))
        clusters = list(VirtualCluster.objects.filter(pk__in=queryset.values("virtual_cluster_id")))
        super().delete_queryset(request, queryset)
        for virtual_cluster in clusters:
            _machines_changed(virtual_cluster)

    @admin.action(description=_("Cordon: place nothing new on the selected machines"))
    def cordon(self, request, queryset):
        self._set_schedulable(queryset, False)

    @admin.action(description=_("Uncordon: make the selected machines schedulable"))
    def uncordon(self, request, queryset):
        self._set_schedulable(queryset, True)

    def _set_schedulable(self, queryset, schedulable):
        vc_ids = set(queryset.values_list("virtual_cluster_id", flat=True))
        queryset.update(schedulable=schedulable)
        for vc in VirtualCluster.objects.filter(pk__in=vc_ids):
            _machines_changed(vc)


@admin.register(PriorityClass)
class PriorityClassAdmin(admin.ModelAdmin):
    """Managers name the priorities and decide who may give them to a task (granted to nobody: everyone)."""

    list_display = ("name", "value", "description")
    search_fields = ("name",)
    filter_horizontal = ("users", "groups")


@admin.register(Storage)
class StorageAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "source", "read_only")
    list_filter = ("kind", "read_only")
    search_fields = ("name", "source")
    filter_horizontal = ("projects", "users")
