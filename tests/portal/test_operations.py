"""Operations from the portal: they call the scheduler's services, come back with a message, and never 500.

Manager controls appear only with the permission, and the server refuses them without it.
"""

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from tasks.models import Task, TaskInstance
from tasks.services import task_create
from tasks.states import Status
from tests.factories import task_data, current_run


def _op(task, action):
    return reverse("portal:task-operation", args=[task.pk, action])


def _detail(task):
    return reverse("portal:task-detail", args=[task.pk])


def _fill(world, *, name="filler", sku_count=8):
    """A task that holds every SKU of every machine of the world's VC."""
    task = task_create(user=world.member, data=task_data(world, name=name, sku_count=sku_count, replicas=len(world.nodes)))
    Task.objects.filter(pk=task.pk).update(status=Status.RUNNING)
    for index, node in enumerate(world.nodes):
        TaskInstance.objects.create(
            task=task, run=current_run(task), index=index, node=node, node_name=node.name, gpu_type=node.gpu_type,
            sku_count=sku_count, gpu_count=sku_count,
        )
    return task


@pytest.fixture
def task(world):
    return task_create(user=world.member, data=task_data(world))


@pytest.mark.django_db
def test_start_places_the_task_and_comes_back_with_a_message(member_client, task):
    response = member_client.post(_op(task, "start"), {"next": _detail(task)}, follow=True)
    task.refresh_from_db()
    assert task.status == Status.DEPLOYING
    assert response.redirect_chain[-1][0] == _detail(task)
    assertContains(response, "Task “qwen-7b” started.")
    assertContains(response, "badge-deploying")


@pytest.mark.django_db
def test_start_queues_when_the_gpus_are_taken(member_client, world, task):
    _fill(world)
    member_client.post(_op(task, "start"))
    task.refresh_from_db()
    assert task.status == Status.QUEUED
    response = member_client.get(_detail(task))
    assertContains(response, "badge-queued")
    assertContains(response, "Queue position")


@pytest.mark.django_db
def test_an_operation_the_state_refuses_is_a_message_not_an_error(member_client, task):
    response = member_client.post(_op(task, "stop"), follow=True)
    assert response.status_code == 200
    assertContains(response, "Cannot stop task “qwen-7b”: it is not deployed.")
    task.refresh_from_db()
    assert task.status == Status.NOT_DEPLOYED


@pytest.mark.django_db
def test_stop_asks_first_then_stops(member_client, task):
    member_client.post(_op(task, "start"))
    confirm = member_client.get(_op(task, "stop"), headers={"HX-Request": "true"})
    assertContains(confirm, 'data-confirm="stop"')
    assertNotContains(confirm, "<html")
    assertContains(member_client.get(_op(task, "stop")), "<html")  # without JavaScript: a page of its own
    task.refresh_from_db()
    assert task.status == Status.DEPLOYING
    response = member_client.post(_op(task, "stop"), follow=True)
    assertContains(response, "Task “qwen-7b” stopped.")
    task.refresh_from_db()
    assert task.status == Status.STOPPED


@pytest.mark.django_db
def test_delete_an_idle_task(member_client, task):
    response = member_client.post(_op(task, "delete"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("portal:task-list")
    assert not Task.objects.filter(pk=task.pk).exists()


@pytest.mark.django_db
def test_next_never_leaves_the_site(member_client, task):
    response = member_client.post(_op(task, "start"), {"next": "https://evil.example.com/"})
    assert response["Location"] == _detail(task)


@pytest.mark.django_db
def test_members_see_no_manager_controls_and_are_refused_by_the_server(member_client, world, task):
    _fill(world)
    member_client.post(_op(task, "start"))
    task.refresh_from_db()
    assert task.status == Status.QUEUED
    response = member_client.get(_detail(task))
    for action in ("pin", "unpin", "force_start"):
        assertNotContains(response, f'data-action="{action}"')
    refused = member_client.post(_op(task, "pin"))
    assert refused.status_code == 403
    assertContains(refused, "Only managers may pin a task.", status_code=403)
    Task.objects.filter(pk=task.pk).update(pinned=True)
    assert member_client.get(_op(task, "force_start")).status_code == 403
    assert member_client.post(_op(task, "force_start")).status_code == 403
    assert member_client.post(_op(task, "unpin")).status_code == 403
    task.refresh_from_db()
    assert task.status == Status.QUEUED and task.pinned


@pytest.mark.django_db
def test_a_manager_pins_then_force_starts_after_seeing_the_victims(manager_client, member_client, world, task):
    filler = _fill(world)
    member_client.post(_op(task, "start"))
    response = manager_client.get(_detail(task))
    assertContains(response, 'data-action="pin"')
    assertNotContains(response, 'data-action="force_start"')

    response = manager_client.post(_op(task, "pin"), follow=True)
    assertContains(response, "pinned to the head of its queue")
    assertContains(response, 'data-action="force_start"')
    assertContains(response, 'data-action="unpin"')

    preview = manager_client.get(_op(task, "force_start"), headers={"HX-Request": "true"})
    assertContains(preview, f'data-victim="{filler.pk}"')
    assertContains(preview, 'type="submit"')
    task.refresh_from_db()
    assert task.status == Status.QUEUED  # the preview changes nothing

    # The confirmation posts the victims it showed; one that no longer matches kills nothing.
    assertContains(preview, f'name="victim" value="{filler.pk}"')
    stale = manager_client.post(_op(task, "force_start"), {"victim": []}, follow=True)
    assertContains(stale, "have changed since the preview")
    filler.refresh_from_db()
    assert filler.status == Status.RUNNING
    response = manager_client.post(_op(task, "force_start"), {"victim": [filler.pk]}, follow=True)
    assertContains(response, "Task “qwen-7b” force-started.")
    task.refresh_from_db()
    filler.refresh_from_db()
    assert task.status == Status.DEPLOYING and filler.status == Status.KILLED


@pytest.mark.django_db
def test_a_second_pin_names_the_pinned_task(manager_client, member_client, world, task):
    _fill(world)
    other = task_create(user=world.member, data=task_data(world, name="other"))
    for queued in (task, other):
        member_client.post(_op(queued, "start"))
    manager_client.post(_op(task, "pin"))
    response = manager_client.post(_op(other, "pin"), follow=True)
    assertContains(response, "qwen-7b")
    other.refresh_from_db()
    assert not other.pinned


@pytest.mark.django_db
def test_force_start_that_cannot_fit_is_refused_in_the_dialog(manager_client, member_client, world):
    _fill(world)
    huge = task_create(user=world.member, data=task_data(world, name="huge", sku_count=8, replicas=2))
    member_client.post(_op(huge, "start"))
    manager_client.post(_op(huge, "pin"))
    Task.objects.filter(pk=huge.pk).update(replicas=3)  # now it could never fit two machines
    preview = manager_client.get(_op(huge, "force_start"), headers={"HX-Request": "true"})
    assertContains(preview, 'role="alert"')
    assertNotContains(preview, 'type="submit"')
