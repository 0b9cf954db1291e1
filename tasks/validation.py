"""SPEC's "bad input" rules, in one module shared by forms, serializers, admin and services.

``validate_task_config`` takes the whole configuration (model instances for the
relations) and raises a ``ValidationError`` whose dict maps each field to its messages.
The small ``check_*`` functions are pure and raise a list of messages for one field.
"""

import re
import unicodedata
from posixpath import normpath

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from kubernetes.utils import parse_quantity as kubernetes_quantity

from clusters.models import PriorityClass, Project, Storage, VirtualCluster
from clusters.permissions import is_manager

from .models import Task

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SYSTEM_PATHS = ("/dev", "/proc", "/sys")
NAME_MAX_LENGTH = 100  # Task.name's max_length
MOUNT_PATH_MAX_LENGTH = 500  # TaskMount.mount_path's max_length

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?)"
IMAGE_RE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)


# An ungranted object reads exactly like a missing one, in validation and in the API's relations alike.
NOT_GRANTED = {
    "project": gettext_lazy("Select a valid project: this one does not exist or you are not a member."),
    "virtual_cluster": gettext_lazy(
        "Select a valid virtual cluster: this one does not exist or is not granted to you."
    ),
    "storage": gettext_lazy("Select a valid storage: this one does not exist or is not granted to you."),
    "priority_class": gettext_lazy(
        "Select a valid priority class: this one does not exist or is not granted to you."
    ),
}


# Whether a task could ever fit its VC is the scheduler's placement rule (``scheduler.placement.Capacity``,
# by which a start is refused too). ``tasks`` lies below ``scheduler`` and cannot import it, so the scheduler
# hands the rule over when the apps are ready (``scheduler.apps``): one rule, said with its numbers, at
# creation, edit and start alike.
_capacity_rule = None


def use_capacity_rule(rule):
    """Install ``rule(*, virtual_cluster, sku_count, replicas)``: the reason in words, or None when it could fit."""
    global _capacity_rule
    _capacity_rule = rule


def _never_fits(vc, sku_count, replicas):
    if _capacity_rule is None:
        raise ImproperlyConfigured("tasks.validation has no capacity rule: is the scheduler app installed?")
    return _capacity_rule(virtual_cluster=vc, sku_count=sku_count, replicas=replicas)


def check_text(value):
    """Every text field: PostgreSQL cannot store a NUL character, and no program reads one as meant."""
    if isinstance(value, str) and "\x00" in value:
        return [_("Text must not contain NUL characters (\\x00).")]
    return []


def check_name(name):
    """Names a person reads and compares: no control, format (bidi overrides, zero-width) or unassigned characters.

    Unicode's "Other" categories (Cc, Cf, Cs, Co, Cn) and the line / paragraph separators; ordinary
    letters of any script, digits, punctuation and spaces are kept.
    """
    bad = sorted({c for c in name if unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")})
    if bad:
        codes = ", ".join(f"U+{ord(c):04X}" for c in bad)
        return [_("The name must not contain invisible or control characters (%(codes)s).") % {"codes": codes}]
    return []


def check_length(value, limit, message):
    if isinstance(value, str) and len(value) > limit:
        return [message % {"max": limit, "length": len(value)}]
    return []


def may_set_command(user):
    """Whether ``user`` may override the image's command (``settings.COMMAND_OVERRIDE``: managers or everyone)."""
    return settings.COMMAND_OVERRIDE != "managers" or is_manager(user)


def port_in_use_message(port):
    return _("The external port %(port)s is already used by a running task.") % {"port": port}


# The API server's grammar of a size with a unit (its binary and decimal suffixes; no exponent, no "K", no
# milli-bytes): the Python client's parser alone accepts more than the server does ("60K", "1 G", "1e3G").
QUANTITY_RE = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)$")


def parse_quantity(value):
    """Bytes in a Kubernetes quantity with a unit (``60G``, ``512Mi``), as the API server reads it; None if it is not one.

    The grammar is the server's; the value comes from Kubernetes' own parser. A number without a unit is
    refused: as bytes it is almost always a mistake.
    """
    text = str(value).strip()
    if not QUANTITY_RE.match(text):
        return None
    try:
        return int(kubernetes_quantity(text))
    except (ValueError, ArithmeticError):
        return None


def image_registry(image):
    """The registry part of an image reference, or None when the reference names none (Docker Hub)."""
    first, sep, _rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def check_image(image, registries=None):
    registries = list(settings.ALLOWED_IMAGE_REGISTRIES if registries is None else registries)
    image = (image or "").strip()
    if not image:
        return [_("An image is required.")]
    if len(image) > 500 or not IMAGE_RE.match(image):
        return [_("“%(image)s” is not a valid image reference (expected registry/repository:tag).") % {"image": image}]
    if image_registry(image) not in registries:
        return [
            _("Images must come from an allowed registry: %(registries)s.") % {"registries": ", ".join(registries)}
        ]
    return []


def check_env(env, memory_bytes=None):
    """Names, duplicates, secrets and SHM_SIZE, on resolved items (``tasks.secrets.env_resolve``);
    ``memory_bytes`` is one instance's memory, when known."""
    if not isinstance(env, list) or any(not isinstance(item, dict) for item in env):
        return [_("Environment variables must be a list of {name, value} pairs.")]
    errors, seen = [], set()
    if len(env) > settings.TASK_MAX_ENV_VARS:
        return [_("At most %(max)s environment variables, got %(count)s.") % {"max": settings.TASK_MAX_ENV_VARS, "count": len(env)}]
    total = sum(len(str(i.get("name", "")).encode()) + len(str(i.get("value") or "").encode()) + 2 for i in env)
    if total > settings.TASK_MAX_ENV_BYTES:
        errors.append(
            _("The environment variables take %(size)s bytes together; at most %(max)s.")
            % {"size": total, "max": settings.TASK_MAX_ENV_BYTES}
        )
    for item in env:
        name, value = str(item.get("name", "")), item.get("value", "")
        if len(name) > settings.TASK_MAX_ENV_NAME_LENGTH:
            errors.append(
                _("The environment variable name “%(name)s…” is longer than %(max)s characters.")
                % {"name": name[:20], "max": settings.TASK_MAX_ENV_NAME_LENGTH}
            )
            continue
        if not ENV_NAME_RE.match(name):
            errors.append(
                _("“%(name)s” is not a valid environment variable name (letters, digits and _, not starting with a digit).")
                % {"name": name}
            )
            continue
        if name in seen:
            errors.append(_("The environment variable %(name)s is given more than once.") % {"name": name})
        seen.add(name)
        if "secret" in item and not isinstance(item["secret"], bool):
            errors.append(_("Whether %(name)s is secret must be true or false.") % {"name": name})
        elif item.get("secret") and name == "SHM_SIZE":
            errors.append(_("SHM_SIZE sizes /dev/shm and is read by the platform: it cannot be secret."))
        elif item.get("unreadable"):
            errors.append(
                _("The saved value of the secret %(name)s can no longer be read (its key changed): enter it again.")
                % {"name": name}
            )
        elif item.get("unmarked"):
            errors.append(
                _("%(name)s is saved as a secret: enter its value to make it plain, or keep it secret.") % {"name": name}
            )
        elif item.get("secret") and not value:
            errors.append(_("The secret %(name)s needs a value: none is saved to keep.") % {"name": name})
        elif value is not None and not isinstance(value, str):
            errors.append(_("The value of %(name)s must be text.") % {"name": name})
        elif check_text(value):
            errors.append(_("The value of %(name)s must not contain NUL characters (\\x00).") % {"name": name})
        elif len(value or "") > settings.TASK_MAX_ENV_VALUE_LENGTH:
            errors.append(
                _("The value of %(name)s is longer than %(max)s characters.")
                % {"name": name, "max": settings.TASK_MAX_ENV_VALUE_LENGTH}
            )
        elif name == "SHM_SIZE":
            size = parse_quantity(value)
            if size is None or size <= 0:
                errors.append(
                    _("SHM_SIZE must be a number with a unit, such as 60G or 512Mi; got “%(value)s”.") % {"value": value}
                )
            elif memory_bytes is not None and size > memory_bytes:
                errors.append(
                    _("SHM_SIZE %(value)s is larger than the instance's memory (%(memory)s GiB).")
                    % {"value": value, "memory": memory_bytes // 2**30}
                )
    return errors


def clean_mount_path(path):
    """The path as the container runtime reads it: ``//data/`` and ``/data`` are one path."""
    return normpath(re.sub("/+", "/", path))


def check_mount_path(path):
    if not isinstance(path, str) or not path.startswith("/"):
        return [_("The mount path “%(path)s” must be absolute.") % {"path": path}]
    if check_text(path):
        return [_("The mount path must not contain NUL characters (\\x00).")]
    if len(path) > MOUNT_PATH_MAX_LENGTH:
        return [_("The mount path must be at most %(max)s characters.") % {"max": MOUNT_PATH_MAX_LENGTH}]
    if ".." in path.split("/"):
        return [_("The mount path “%(path)s” must not contain “..”.") % {"path": path}]
    clean = clean_mount_path(path)
    if clean == "/" or any(clean == p or clean.startswith(p + "/") for p in SYSTEM_PATHS):
        return [_("The mount path “%(path)s” would shadow a system path (/, /dev, /proc, /sys).") % {"path": path}]
    return []


def check_mount_paths(paths):
    errors, seen = [], set()
    for path in paths:
        errors.extend(check_mount_path(path))
        clean = clean_mount_path(path) if isinstance(path, str) else path
        if clean in seen:
            errors.append(_("The mount path %(path)s is used more than once.") % {"path": path})
        seen.add(clean)
    return errors


def check_port(port, *, low=1, high=65535):
    if port is None:
        return []
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= high:
        return [_("Ports must be between %(low)s and %(high)s.") % {"low": low, "high": high}]
    return []


def check_string_list(value):
    """A command or its arguments: a list of at most TASK_MAX_COMMAND_WORDS strings of bounded length."""
    if not isinstance(value, list) or any(not isinstance(item, str) for item in value):
        return [_("Must be a list of strings.")]
    if len(value) > settings.TASK_MAX_COMMAND_WORDS:
        return [_("At most %(max)s words, got %(count)s.") % {"max": settings.TASK_MAX_COMMAND_WORDS, "count": len(value)}]
    if any(check_text(item) for item in value):
        return [_("Text must not contain NUL characters (\\x00).")]
    if any(len(item) > settings.TASK_MAX_COMMAND_WORD_LENGTH for item in value):
        return [_("Each word must be at most %(max)s characters.") % {"max": settings.TASK_MAX_COMMAND_WORD_LENGTH}]
    return []


def validate_task_config(*, user, data, task=None):
    """Check a whole task configuration for ``user``; raise ValidationError({field: [messages]}).

    ``data`` holds every field of the create form: ``project``, ``virtual_cluster`` and each
    mount's ``storage`` as model instances. ``task`` is the task being edited, if any.
    """
    errors = {}

    def add(field, messages):
        if messages:
            errors.setdefault(field, []).extend(messages)

    name = str(data.get("name") or "").strip()
    if not name:
        add("name", [_("A name is required.")])
    elif len(name) > NAME_MAX_LENGTH:
        add("name", [_("The name must be at most %(max)s characters.") % {"max": NAME_MAX_LENGTH}])
    else:
        add("name", check_name(name))

    description = data.get("description") or ""
    add("description", check_text(description))
    add("description", check_length(
        description, settings.TASK_MAX_DESCRIPTION_LENGTH,
        _("The description must be at most %(max)s characters (it has %(length)s)."),
    ))

    public = data.get("public_endpoint", False)
    if not isinstance(public, bool):
        add("public_endpoint", [_("Must be true or false.")])
    elif public and not (task.public_endpoint if task is not None else False):
        owner = task.owner_id if task is not None else user.pk
        if owner != user.pk and not is_manager(user):
            add("public_endpoint", [_("Only the task's owner makes its endpoint public.")])

    project = data.get("project")
    if project is None:
        add("project", [_("Choose a project.")])
    elif not Project.objects.of_member(user).filter(pk=project.pk).exists():
        add("project", [str(NOT_GRANTED["project"])])

    vc = data.get("virtual_cluster")
    if vc is None:
        add("virtual_cluster", [_("Choose a virtual cluster.")])
    elif not VirtualCluster.objects.usable_by(user).filter(pk=vc.pk).exists():
        add("virtual_cluster", [str(NOT_GRANTED["virtual_cluster"])])
        vc = None

    priority_class = data.get("priority_class")
    if priority_class is not None and not PriorityClass.objects.usable_by(user).filter(pk=priority_class.pk).exists():
        add("priority_class", [str(NOT_GRANTED["priority_class"])])

    add("image", check_text(data.get("image")) or check_image(data.get("image")))

    sku_count = data.get("sku_count")
    if not isinstance(sku_count, int) or sku_count < 1:
        add("sku_count", [_("The SKU count must be at least 1.")])
        sku_count = None

    replicas = data.get("replicas")
    if not isinstance(replicas, int) or not 1 <= replicas <= settings.MAX_REPLICAS:
        add("replicas", [_("Replicas must be between 1 and %(max)s.") % {"max": settings.MAX_REPLICAS}])
    elif sku_count is not None and vc is not None:
        add("sku_count", [reason] if (reason := _never_fits(vc, sku_count, replicas)) else [])

    if data.get("expose_port"):
        container_port = data.get("container_port")
        if container_port is None:
            add("container_port", [_("A container port is required when the port is exposed.")])
        add("container_port", check_port(container_port))
        external_port = data.get("external_port")
        low, high = settings.NODEPORT_RANGE
        port_errors = check_port(external_port, low=low, high=high)
        add("external_port", port_errors)
        if external_port is not None and not port_errors:
            in_use = Task.objects.holding().filter(endpoint_port=external_port)
            if task is not None:
                in_use = in_use.exclude(pk=task.pk)
            if in_use.exists():
                add("external_port", [port_in_use_message(external_port)])
    else:
        add("container_port", check_port(data.get("container_port")))

    memory = sku_count * vc.sku_memory_gib * 2**30 if (sku_count and vc is not None) else None
    add("env", check_env(data.get("env") or [], memory))

    mounts = data.get("mounts") or []
    add("mounts", check_mount_paths([m.get("mount_path") for m in mounts]))
    storages = [m.get("storage") for m in mounts]
    if storages:
        allowed = set(
            Storage.objects.mountable_by(user, project).filter(pk__in=[s.pk for s in storages if s]).values_list("pk", flat=True)
        )
        if any(s is None or s.pk not in allowed for s in storages):
            add("mounts", [str(NOT_GRANTED["storage"])])

    for field in ("command", "args"):
        add(field, check_string_list(data.get(field) or []))
        if data.get(field) and not may_set_command(user) and (task is None or data[field] != getattr(task, field)):
            add(field, [_(
                "Only managers may set the command or arguments on this site: it runs them as processes on the "
                "portal's machine. Leave it empty to use the image's own."
            )])

    if errors:
        raise ValidationError(errors)
