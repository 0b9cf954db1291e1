"""The planned representation says exactly what DRF's own ``to_representation`` says, field for field."""

import pytest
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from deploy_portal.api.tasks.serializers import TaskSerializer
from tasks.models import Task
from tasks.states import Status
from tests.api.conftest import holding_task, world_task
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _as_drf(serializer_class):
    """``serializer_class`` with DRF's own per-object representation, for its nested serializers too."""

    def plain(cls):
        declared = {}
        for name, field in cls._declared_fields.items():
            if isinstance(field, serializers.ListSerializer) and isinstance(field.child, serializers.Serializer):
                child = plain(type(field.child))
                field = child(many=True, **field.child._kwargs)
            declared[name] = field
        return type(f"Plain{cls.__name__}", (cls,), {
            "to_representation": serializers.Serializer.to_representation, **declared,
        })

    return plain(serializer_class)


def test_every_field_of_every_kind_of_task_reads_as_drf_reads_it(world):
    world_task(world, name="idle")
    holding_task(world, name="running", endpoint_port=31234)
    world_task(world, name="queued", status=Status.QUEUED, queued_at="2026-01-01T00:00:00Z", pinned=True)
    world_task(world, name="odd", env=[{"name": "A", "value": ""}], command=["python3", "-c", "x"], expose_port=False,
               container_port=None, owner=UserFactory(username="bob"))
    request = APIRequestFactory().get("/api/v1/tasks/")
    request.user = world.member
    tasks = list(Task.objects.select_related("owner", "project", "virtual_cluster").prefetch_related("mounts"))
    context = {"request": request, "queue_info": {tasks[2].pk: (1, "waits")}}
    planned = TaskSerializer(tasks, many=True, context=context).data
    drf = _as_drf(TaskSerializer)(tasks, many=True, context=context).data
    assert planned == drf
    assert [list(item) for item in planned] == [list(item) for item in drf]  # the same order of keys
    assert {item["name"] for item in planned} == {"idle", "running", "queued", "odd"}
