"""The portal's forms: a task's create / copy / edit form, and the evaluate dialog.

The task form only turns POST data into the configuration ``tasks.services`` takes (relations as
instances, env and mount rows as lists, command and args split like a shell would) and
puts the service's ``ValidationError`` next to the fields. The rules themselves live in
``tasks.validation``: the form does not repeat them, so a choice field accepts any id and
lets the service give its one answer for "not granted" and "does not exist" alike.
"""

import re
import shlex
from functools import partial

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.template.loader import render_to_string
from django.urls import reverse_lazy
from django.utils.safestring import mark_safe
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from clusters.models import PriorityClass, Project, Storage, VirtualCluster
from evaluations.models import MAX_CONCURRENCY, MAX_REQUESTS, MAX_TOKENS, Evaluation
from evaluations.services import PARAMETER_FIELDS
from observability.models import Webhook
from tasks.models import TaskType
from tasks.secrets import is_secret
from tasks.services import CONFIG_FIELDS


class GrantedChoiceField(forms.ModelChoiceField):
    """Offers the user's granted objects; an unknown or ungranted id becomes None or the object,
    and the service refuses it with the message it gives everywhere."""

    def __init__(self, queryset, *, lookup, **kwargs):
        kwargs.setdefault("empty_label", _("Select…"))
        super().__init__(queryset, required=False, **kwargs)
        self.lookup = lookup

    def to_python(self, value):
        """None when nothing is chosen; else the object, or an unsaved one of that id when none exists
        (the service then answers "not granted" for it, as for an object the user may not use)."""
        if value in self.empty_values:
            return None
        if isinstance(value, self.lookup.model):
            return value
        try:
            pk = int(value)
        except (TypeError, ValueError):
            pk = 0
        return self.lookup.filter(pk=pk).first() or self.lookup.model(pk=pk)

    def validate(self, value):
        pass


class PageTemplateWidget(forms.Widget):
    """A widget drawn by one of the portal's templates (the form renderer only looks in the apps)."""

    def _render(self, template_name, context, renderer=None):
        return mark_safe(render_to_string(template_name, context))  # our own template, autoescaped


class EnvRowsWidget(PageTemplateWidget):
    """Rows ``env-<i>-name`` / ``env-<i>-value`` / ``env-<i>-secret``; the browser adds and removes them.

    A secret's value is never written into the page (as Django's ``PasswordInput``): its row says whether a
    saved value is kept when left blank (``saved_secrets``: the names the edited or copied task holds).
    """

    template_name = "portal/widgets/env_rows.html"
    saved_secrets = frozenset()

    def format_value(self, value):
        return [
            {"name": row.get("name", ""), "value": "", "secret": True, "saved": row.get("name") in self.saved_secrets}
            if is_secret(row) else {"name": row.get("name", ""), "value": row.get("value", ""), "secret": False}
            for row in value or [] if isinstance(row, dict)
        ]

    def value_from_datadict(self, data, files, name):
        pattern = re.compile(rf"^{re.escape(name)}-(\d+)-(?:name|value|secret)$")
        indexes = sorted({int(m[1]) for key in data if (m := pattern.match(key))})
        return [
            {"name": data.get(f"{name}-{i}-name", ""), "value": data.get(f"{name}-{i}-value", ""),
             "secret": f"{name}-{i}-secret" in data}
            for i in indexes
        ]

    def value_omitted_from_data(self, data, files, name):
        return False


class EnvField(forms.Field):
    widget = EnvRowsWidget

    def to_python(self, value):
        rows = [
            {"name": str(r.get("name", "")).strip(), "secret": bool(r.get("secret")),
             # A secret is taken as typed (a password may end in a space); a blank one keeps the saved value.
             "value": str(r.get("value", "")) if r.get("secret") else str(r.get("value", "")).strip()}
            for r in value or []
        ]
        # A row left entirely blank is an unused row, not an input; so is the SHM_SIZE row the create form
        # suggests, left without a value (SHM_SIZE is optional: a single-GPU task rarely needs it).
        return [r for r in rows if r["value"] or (r["name"] and r["name"] != "SHM_SIZE")]


class MountRowsWidget(PageTemplateWidget):
    """One row per storage the user may mount: a check box ``mounts-<id>`` and a path ``mounts-<id>-path``."""

    template_name = "portal/widgets/mount_rows.html"
    storages = ()

    def format_value(self, value):
        return {
            (row["storage"].pk if hasattr(row["storage"], "pk") else row["storage"]): row["mount_path"]
            for row in value or []
        }

    def value_from_datadict(self, data, files, name):
        pattern = re.compile(rf"^{re.escape(name)}-(\d+)$")
        checked = sorted({int(m[1]) for key in data if (m := pattern.match(key))})
        return [{"storage": pk, "mount_path": data.get(f"{name}-{pk}-path", "").strip()} for pk in checked]

    def value_omitted_from_data(self, data, files, name):
        return False

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        chosen = context["widget"]["value"]
        context["widget"]["rows"] = [
            {"storage": s, "checked": s.pk in chosen, "mount_path": chosen.get(s.pk, "")} for s in self.storages
        ]
        return context


class MountsField(forms.Field):
    widget = MountRowsWidget

    def to_python(self, value):
        rows = list(value or [])
        ids = [r["storage"] for r in rows if not hasattr(r["storage"], "pk")]
        found = Storage.objects.in_bulk(ids)
        return [
            {"storage": r["storage"] if hasattr(r["storage"], "pk") else found.get(r["storage"]),
             "mount_path": r["mount_path"]}
            for r in rows
        ]


class ShellWordsField(forms.CharField):
    """A command line typed as text; stored as a list of words, split the way a shell would."""

    def prepare_value(self, value):
        return shlex.join(value) if isinstance(value, list) else value

    def to_python(self, value):
        value = super().to_python(value)
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValidationError(_("This is not a valid command line: %(error)s.") % {"error": exc}) from exc


class TaskForm(forms.Form):
    """SPEC's create form. ``locked`` fields keep the source's value (copy and edit keep task type and project)."""

    name = forms.CharField(label=_("Task name"), required=False)
    project = GrantedChoiceField(Project.objects.none(), lookup=Project.objects.all(), label=_("Project"))
    task_type = forms.ChoiceField(label=_("Task type"), choices=TaskType.choices, initial=TaskType.INFERENCE)
    image = forms.CharField(
        label=_("Image"), required=False,
        widget=forms.TextInput(attrs={"placeholder": "192.168.99.199:8080/team/vllm:0.6.0", "spellcheck": "false"}),
    )
    virtual_cluster = GrantedChoiceField(
        VirtualCluster.objects.none(), lookup=VirtualCluster.objects.all(), label=_("Virtual cluster"),
    )
    sku_count = forms.IntegerField(label=_("SKU count"), required=False, initial=1)
    priority_class = GrantedChoiceField(
        PriorityClass.objects.none(), lookup=PriorityClass.objects.all(), label=_("Priority"),
        empty_label=_("Normal (default)"),
    )
    replicas = forms.IntegerField(label=_("Replicas"), required=False, initial=1)
    expose_port = forms.BooleanField(label=_("Expose a port"), required=False, initial=True)
    container_port = forms.IntegerField(label=_("Container port"), required=False, initial=8000)
    external_port = forms.IntegerField(
        label=_("External port"), required=False, help_text=_("Leave blank to let the system pick a free one."),
    )
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    public_endpoint = forms.BooleanField(
        label=_("Public endpoint"), required=False,
        help_text=_("The gateway answers anyone who can reach it, without an API key."),
    )
    env = EnvField(label=_("Environment variables"), required=False)
    mounts = MountsField(label=_("Storage"), required=False)
    command = ShellWordsField(
        label=_("Command"), required=False, widget=forms.TextInput(attrs={"spellcheck": "false"}),
        help_text=_("Optional; replaces the image's entrypoint."),
    )
    args = ShellWordsField(
        label=_("Arguments"), required=False, widget=forms.TextInput(attrs={"spellcheck": "false"}),
        help_text=_("Optional; quote words that contain spaces."),
    )

    def __init__(self, *args, user, locked=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["project"].queryset = Project.objects.of_member(user)
        self.fields["virtual_cluster"].queryset = VirtualCluster.objects.usable_by(user)
        self.fields["priority_class"].queryset = PriorityClass.objects.usable_by(user)
        self.fields["mounts"].widget.storages = list(Storage.objects.mountable_by(user))
        self.fields["env"].widget.saved_secrets = frozenset(
            row.get("name") for row in self.initial.get("env") or () if is_secret(row)
        )
        for name in locked:
            self.fields[name].disabled = True
        # The VC's free GPUs and SKU bundle follow the choice (and the SKU count, for the SHM_SIZE hint).
        vc_info = {
            "hx-get": reverse_lazy("portal:vc-info"), "hx-target": "#vc-info",
            "hx-include": "[name=virtual_cluster],[name=sku_count],[name=replicas]",
        }
        self.fields["virtual_cluster"].widget.attrs.update(vc_info, **{"hx-trigger": "change"})
        for name in ("sku_count", "replicas"):
            self.fields[name].widget.attrs.update(vc_info, **{"hx-trigger": "input changed delay:300ms"})
        self.fields["expose_port"].widget.attrs["data-toggles"] = "port-fields"

    def task_data(self):
        """The cleaned input as the configuration ``task_create`` / ``task_copy`` / ``task_update`` take."""
        data = {name: self.cleaned_data.get(name) for name in CONFIG_FIELDS}
        data["mounts"] = self.cleaned_data.get("mounts") or []
        data["description"] = data["description"] or ""
        return data

    def submit(self, service):
        """Call ``service(data)`` with the configuration; on the service's ValidationError put each
        message next to its field and return None."""
        if not self.is_valid():
            return None
        try:
            return service(self.task_data())
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
            return None


class EvaluationForm(forms.ModelForm):
    """The evaluate dialog: the run's parameters (the service checks the task and saves)."""

    class Meta:
        model = Evaluation
        fields = PARAMETER_FIELDS
        widgets = {"prompt": forms.Textarea(attrs={"rows": 3})}
        # The limits are the model's validators (the API checks the same ones); said next to the fields.
        help_texts = {
            "max_tokens": format_lazy(_("From 1 to {max}."), max=MAX_TOKENS),
            "request_count": format_lazy(_("From 1 to {max}."), max=MAX_REQUESTS),
            "concurrency": format_lazy(_("From 1 to {max}."), max=MAX_CONCURRENCY),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The browser's number inputs take their bounds from the model's validators, not the column's type.
        for name, field in self.fields.items():
            for validator in Evaluation._meta.get_field(name).validators:
                if isinstance(validator, MinValueValidator):
                    field.widget.attrs["min"] = validator.limit_value
                elif isinstance(validator, MaxValueValidator):
                    field.widget.attrs["max"] = validator.limit_value




class UsagePeriodForm(forms.Form):
    """The period of the GPU-hours page: whole days, the end day included; this month by default."""

    since = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    until = forms.DateField(label=_("To (included)"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            raise ValidationError({"until": _("The end of the period is before its start.")})
        return data


class NotificationPreferencesForm(forms.Form):
    """Per event: by e-mail, to one of the user's webhooks; and after how many minutes a wait is worth telling."""

    queued_minutes = forms.IntegerField(label=_("Tell me about a wait after (minutes)"), min_value=1, max_value=7 * 24 * 60)

    def __init__(self, *args, user, events, preferences, **kwargs):
        super().__init__(*args, **kwargs)
        self.events = events
        webhooks = user.webhooks.filter(project__isnull=True)
        current = {p.event: p for p in preferences}
        self.initial.setdefault(
            "queued_minutes", next((p.queued_minutes for p in preferences), settings.NOTIFY_QUEUED_MINUTES)
        )
        for value, label in events:
            preference = current.get(value)
            self.fields[f"{value}_email"] = forms.BooleanField(
                label=_("E-mail"), required=False, initial=bool(preference and preference.email),
            )
            self.fields[f"{value}_webhook"] = forms.ModelChoiceField(
                webhooks, label=_("Webhook"), required=False, empty_label=_("No webhook"),
                initial=preference.webhook_id if preference else None,
            )

    def rows(self):
        return [(label, self[f"{value}_email"], self[f"{value}_webhook"]) for value, label in self.events]

    def choices(self):
        return {
            value: (self.cleaned_data[f"{value}_email"], self.cleaned_data[f"{value}_webhook"]) for value, _l in self.events
        }


class WebhookForm(forms.ModelForm):
    class Meta:
        model = Webhook
        fields = ("name", "kind", "url", "secret")
        field_classes = {"url": partial(forms.URLField, assume_scheme="https")}
