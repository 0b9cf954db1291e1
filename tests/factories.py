"""factory-boy factories for the domain, and ``make_world`` for the common small setup."""

from types import SimpleNamespace

import factory
from django.contrib.auth import get_user_model

from clusters.models import Node, Project, Storage, StorageKind, VirtualCluster
from tasks.models import Task, TaskType

PASSWORD = "pass-1234"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def managers_group():
    from tasks.permissions import ensure_managers_group

    return ensure_managers_group()


class ManagerFactory(UserFactory):
    username = factory.Sequence(lambda n: f"manager{n}")
    is_staff = True

    @factory.post_generation
    def join_managers(obj, create, extracted, **kwargs):
        if create:
            obj.groups.add(managers_group())


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"project-{n}")

    @factory.post_generation
    def members(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.members.add(*extracted)


class VirtualClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VirtualCluster
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"vc-{n}")
    gpu_type = "NVIDIA-H100"
    sku_gpus = 1
    sku_cpus = 12
    sku_memory_gib = 120

    @factory.post_generation
    def users(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.users.add(*extracted)


class NodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Node

    virtual_cluster = factory.SubFactory(VirtualClusterFactory)
    name = factory.Sequence(lambda n: f"node-{n:03d}")
    gpu_type = factory.SelfAttribute("virtual_cluster.gpu_type")
    sku_capacity = 8


class StorageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Storage
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"storage-{n}")
    kind = StorageKind.NFS
    source = "nfs.example.com:/exports/models"

    @factory.post_generation
    def projects(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.projects.add(*extracted)


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    name = factory.Sequence(lambda n: f"task-{n}")
    project = factory.SubFactory(ProjectFactory)
    task_type = TaskType.INFERENCE
    image = "registry.example.com/team/model:v1"
    virtual_cluster = factory.SubFactory(VirtualClusterFactory)
    sku_count = 1
    replicas = 1
    expose_port = True
    container_port = 8000
    owner = factory.SubFactory(UserFactory)


def make_world(*, nodes=2, sku_capacity=8):
    member = UserFactory(username="alice")
    project = ProjectFactory(name="llm", members=[member])
    vc = VirtualClusterFactory(name="h100", users=[member])
    machines = [NodeFactory(virtual_cluster=vc, name=f"gpu-{i:02d}", sku_capacity=sku_capacity) for i in range(nodes)]
    storage = StorageFactory(name="models", projects=[project])
    return SimpleNamespace(member=member, project=project, vc=vc, nodes=machines, storage=storage)


def task_data(world, **overrides):
    """A valid create-form configuration in ``world`` (relations as instances)."""
    data = {
        "name": "qwen-7b",
        "project": world.project,
        "task_type": TaskType.INFERENCE,
        "image": "registry.example.com/llm/vllm:0.6.0",
        "virtual_cluster": world.vc,
        "sku_count": 2,
        "replicas": 1,
        "expose_port": True,
        "container_port": 8000,
        "external_port": None,
        "description": "",
        "env": [{"name": "SHM_SIZE", "value": "60G"}],
        "mounts": [{"storage": world.storage, "mount_path": "/models"}],
        "command": [],
        "args": [],
    }
    data.update(overrides)
    return data


def current_run(task):
    """The task's current run, made (as a placement would) when a test builds a holding task by hand."""
    from tasks.services import bulk_current_runs

    from django.utils import timezone

    from tasks.models import TaskRun
    from tasks.states import HOLDING, Status

    task.refresh_from_db(fields=["current_run", "status"])
    if task.current_run_id is None:
        bulk_current_runs([task])
        if task.status not in HOLDING and task.status != Status.QUEUED:  # a run that has ended
            TaskRun.objects.filter(pk=task.current_run_id).update(ended_at=timezone.now())
            task.current_run.refresh_from_db()
    return task.current_run
