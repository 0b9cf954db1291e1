"""Every rule of SPEC's "bad input" list: a clear message on the field, and nothing saved."""

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from clusters.models import Storage
from tasks.models import Task, TaskMount
from tasks.services import task_create, task_transition, task_update
from tasks.states import Status
from tasks.validation import check_env, check_image, check_mount_path, parse_quantity
from tests.factories import ProjectFactory, StorageFactory, TaskFactory, VirtualClusterFactory, task_data

BAD_INPUTS = [
    # (case id, overrides, field, message fragment)
    ("image-registry", {"image": "docker.io/library/nginx:latest"}, "image", "allowed registry: registry.example.com"),
    ("image-hub", {"image": "nginx:latest"}, "image", "allowed registry"),
    ("image-invalid", {"image": "registry.example.com/Bad Image::"}, "image", "not a valid image reference"),
    ("image-empty", {"image": ""}, "image", "required"),
    ("sku-zero", {"sku_count": 0}, "sku_count", "at least 1"),
    ("sku-too-large", {"sku_count": 9}, "sku_count", "the largest machine offers 8"),
    ("never-fits", {"sku_count": 8, "replicas": 3}, "sku_count", "could host only 2"),
    ("replicas-zero", {"replicas": 0}, "replicas", "between 1 and"),
    ("replicas-above-limit", {"replicas": 17}, "replicas", "between 1 and 16"),
    ("container-port-range", {"container_port": 70000}, "container_port", "between 1 and 65535"),
    ("container-port-missing", {"container_port": None}, "container_port", "required"),
    ("external-port-range", {"external_port": 80}, "external_port", "between 30000 and 32767"),
    ("env-name", {"env": [{"name": "1BAD", "value": "x"}]}, "env", "not a valid environment variable name"),
    ("env-name-dash", {"env": [{"name": "MY-VAR", "value": "x"}]}, "env", "not a valid environment variable name"),
    ("env-duplicate", {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "env", "more than once"),
    ("shm-no-unit", {"env": [{"name": "SHM_SIZE", "value": "60"}]}, "env", "number with a unit"),
    ("shm-garbage", {"env": [{"name": "SHM_SIZE", "value": "lots"}]}, "env", "number with a unit"),
    ("shm-too-large", {"env": [{"name": "SHM_SIZE", "value": "500Gi"}]}, "env", "larger than the instance's memory"),
    ("mount-relative", {"mounts_paths": ["models"]}, "mounts", "must be absolute"),
    ("mount-dotdot", {"mounts_paths": ["/data/../etc"]}, "mounts", "must not contain"),
    ("mount-repeat", {"mounts_paths": ["/data", "/data/"]}, "mounts", "more than once"),
    ("mount-root", {"mounts_paths": ["/"]}, "mounts", "shadow a system path"),
    ("mount-dev", {"mounts_paths": ["/dev"]}, "mounts", "shadow a system path"),
    ("mount-proc-sub", {"mounts_paths": ["/proc/x"]}, "mounts", "shadow a system path"),
    ("mount-sys", {"mounts_paths": ["/sys"]}, "mounts", "shadow a system path"),
    ("mount-double-slash-root", {"mounts_paths": ["//"]}, "mounts", "shadow a system path"),
    ("mount-double-slash-proc", {"mounts_paths": ["//proc"]}, "mounts", "shadow a system path"),
    ("mount-double-slash-repeat", {"mounts_paths": ["/data", "//data"]}, "mounts", "more than once"),
    ("name-too-long", {"name": "x" * 101}, "name", "at most 100 characters"),
    ("name-empty", {"name": "  "}, "name", "required"),
]


def _data(world, overrides):
    overrides = dict(overrides)
    paths = overrides.pop("mounts_paths", None)
    if paths is not None:
        overrides["mounts"] = [{"storage": world.storage, "mount_path": p} for p in paths]
    return task_data(world, **overrides)


@pytest.mark.django_db
@pytest.mark.parametrize("case,overrides,field,fragment", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_refused_with_message_and_nothing_saved(world, case, overrides, field, fragment):
    with pytest.raises(ValidationError) as refused:
        task_create(user=world.member, data=_data(world, overrides))
    messages = refused.value.message_dict
    assert field in messages, messages
    assert any(fragment in m for m in messages[field]), messages[field]
    assert not Task.objects.exists()
    assert not TaskMount.objects.exists()


@pytest.mark.django_db
def test_valid_input_is_saved(world):
    task = task_create(user=world.member, data=task_data(world))
    assert task.status == Status.NOT_DEPLOYED and task.owner == world.member
    assert task.events.get().operation == "create"


@pytest.mark.django_db
def test_external_port_used_by_a_task_holding_gpus(world):
    holder = TaskFactory(project=world.project, virtual_cluster=world.vc, status=Status.RUNNING, endpoint_port=30080)
    with pytest.raises(ValidationError) as refused:
        task_create(user=world.member, data=task_data(world, external_port=30080))
    assert "already used" in refused.value.message_dict["external_port"][0]
    # A task that holds nothing does not block the port.
    task_transition(task=holder, transition="stop", endpoint_port=None)
    assert task_create(user=world.member, data=task_data(world, external_port=30080)).external_port == 30080


@pytest.mark.django_db
@pytest.mark.parametrize("relation", ["virtual_cluster", "project", "storage"])
@pytest.mark.parametrize("kind", ["ungranted", "missing"])
def test_ungranted_relation_answers_like_a_missing_one(world, relation, kind):
    if relation == "virtual_cluster":
        other = VirtualClusterFactory()
    elif relation == "project":
        other = ProjectFactory()
    else:
        other = StorageFactory()
    if kind == "missing":
        other.pk = 999_999
    overrides = {"mounts": [{"storage": other, "mount_path": "/x"}]} if relation == "storage" else {relation: other}
    field = "mounts" if relation == "storage" else relation
    with pytest.raises(ValidationError) as refused:
        task_create(user=world.member, data=task_data(world, **overrides))
    assert "does not exist or" in refused.value.message_dict[field][0]
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_storage_granted_to_the_user_directly(world):
    own = Storage.objects.create(name="scratch", kind="hostPath", source="/scratch")
    own.users.add(world.member)
    task = task_create(user=world.member, data=task_data(world, mounts=[{"storage": own, "mount_path": "/scratch"}]))
    assert task.mounts.get().storage == own


@pytest.mark.django_db
def test_update_refused_while_holding_or_queued_and_validated(world):
    task = task_create(user=world.member, data=task_data(world))
    with pytest.raises(ValidationError):
        task_update(task=task, user=world.member, data={"sku_count": 99})
    task.refresh_from_db()
    assert task.sku_count == 2
    task_update(task=task, user=world.member, data={"sku_count": 4, "description": "bigger"})
    task.refresh_from_db()
    assert (task.sku_count, task.description) == (4, "bigger")


# --- the pure checks, over many inputs ------------------------------------------------

@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True))
def test_valid_env_names_pass(name):
    assert check_env([{"name": name, "value": "v"}]) == []


@given(st.text(min_size=1, max_size=10).filter(lambda s: not (s[0].isascii() and (s[0].isalpha() or s[0] == "_"))))
def test_env_names_not_starting_with_letter_or_underscore_fail(name):
    assert check_env([{"name": name, "value": "v"}])


@given(st.integers(min_value=1, max_value=10_000), st.sampled_from(["Ki", "Mi", "Gi", "k", "M", "G"]))
def test_quantities_parse(number, unit):
    assert parse_quantity(f"{number}{unit}") == number * {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 10**6, "G": 10**9}[unit]


@pytest.mark.parametrize("path", ["/models", "/data/llm", "/root/.cache/huggingface", "/develop", "/system"])
def test_ordinary_mount_paths_pass(path):
    assert check_mount_path(path) == []


@pytest.mark.parametrize(
    "image",
    ["registry.example.com/llm/vllm:0.6.0", "192.168.99.199:8080/team/tgi:2.0",
     "registry.example.com/a/b/c@sha256:" + "a" * 64],
)
def test_allowed_images_pass(image, settings):
    assert check_image(image) == []


@pytest.mark.django_db
def test_manager_outside_the_project_edits_with_the_owners_grants(world, manager):
    task = task_create(user=world.member, data=task_data(world))
    task_update(task=task, user=manager, data={"description": "tuned by ops"})
    task.refresh_from_db()
    assert task.description == "tuned by ops"
    with pytest.raises(ValidationError) as refused:
        task_update(task=task, user=manager, data={"image": "docker.io/library/nginx:1"})
    assert "image" in refused.value.message_dict
