"""The list endpoints: scoping, filters, ordering, pagination, and query counts that do not grow with the page."""

import pytest

from tasks.models import TaskInstance
from tasks.services import event_record
from tasks.states import Status
from tests.api.conftest import holding_task, world_task
from tests.factories import ProjectFactory, StorageFactory, UserFactory, VirtualClusterFactory, current_run

pytestmark = pytest.mark.django_db


def names(response):
    assert response.status_code == 200, response.data
    return [item["name"] for item in response.json()["results"]]


@pytest.fixture
def mixed_tasks(world):
    bob = UserFactory(username="bob")
    world.project.members.add(bob)
    return {
        "a-idle": world_task(world, name="a-idle"),
        "b-running": holding_task(world, name="b-running"),
        "c-stopped": world_task(world, name="c-stopped", status=Status.STOPPED, owner=bob),
        "d-failed": world_task(world, name="d-failed", status=Status.FAILED, owner=bob),
    }


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=stopped", ["c-stopped"]),
        ("status=stopped&status=failed&ordering=name", ["c-stopped", "d-failed"]),
        ("owner=bob&ordering=-name", ["d-failed", "c-stopped"]),
        ("search=RUN", ["b-running"]),
        ("task_type=inference&ordering=name", ["a-idle", "b-running", "c-stopped", "d-failed"]),
    ],
)
def test_task_filters(member_api, mixed_tasks, query, expected):
    assert names(member_api.get(f"/api/v1/tasks/?{query}")) == expected


def test_filter_by_project_and_virtual_cluster(world, member_api, mixed_tasks):
    vc = VirtualClusterFactory(name="a100", users=[world.member])
    world_task(world, name="on-a100", virtual_cluster=vc)

    assert names(member_api.get(f"/api/v1/tasks/?virtual_cluster={vc.pk}")) == ["on-a100"]
    assert len(names(member_api.get(f"/api/v1/tasks/?project={world.project.pk}"))) == 5


def test_filtering_by_an_unseen_project_answers_like_a_missing_one(world, member_api):
    hidden = ProjectFactory(name="hidden")

    unseen = member_api.get(f"/api/v1/tasks/?project={hidden.pk}")
    missing = member_api.get("/api/v1/tasks/?project=987654")

    assert unseen.status_code == missing.status_code == 400
    assert unseen.json() == missing.json()


def test_a_bad_filter_value_answers_400(member_api):
    response = member_api.get("/api/v1/tasks/?status=sleeping")

    assert response.status_code == 400 and "status" in response.json()


def test_pages(world, member_api):
    for i in range(5):
        world_task(world, name=f"t{i}")

    first = member_api.get("/api/v1/tasks/?page_size=2&ordering=name").json()
    second = member_api.get(first["next"]).json()

    assert first["count"] == 5
    assert [t["name"] for t in first["results"] + second["results"]] == ["t0", "t1", "t2", "t3"]
    assert member_api.get("/api/v1/tasks/?page=9").status_code == 404


def test_projects_storages_and_clusters_are_the_users(world, member_api):
    ProjectFactory(name="not-mine")
    StorageFactory(name="not-mine")
    VirtualClusterFactory(name="not-mine")

    assert names(member_api.get("/api/v1/projects/")) == ["llm"]
    assert names(member_api.get("/api/v1/storages/")) == ["models"]
    assert names(member_api.get("/api/v1/virtual-clusters/")) == ["h100"]


def test_managers_list_only_the_virtual_clusters_granted_to_them_and_see_every_queue(world, people, manager_api):
    VirtualClusterFactory(name="a100", users=[people.manager])

    assert names(manager_api.get("/api/v1/virtual-clusters/")) == ["a100"]
    assert sorted(q["name"] for q in manager_api.get("/api/v1/queue/").json()) == ["a100", "h100"]


def test_virtual_clusters_read_free_and_total(world, member_api):
    holding_task(world, sku_count=3)
    world.nodes[1].schedulable = False
    world.nodes[1].save()

    [vc] = member_api.get("/api/v1/virtual-clusters/").json()["results"]

    assert vc["sku"] == {
        "gpus": 1, "cpus": 12, "memory_gib": 120, "description": "1 GPU + 12 CPU cores + 120 GiB memory",
    }
    assert (vc["total_skus"], vc["free_skus"], vc["total_gpus"], vc["free_gpus"]) == (8, 5, 8, 5)


def test_the_queue(world, member_api):
    for i, node in enumerate(world.nodes):
        holding_task(world, name=f"big-{i}", node=node, sku_count=8, endpoint_port=30100 + i)
    waiting = [world_task(world, name=f"q{i}") for i in range(3)]
    for task in waiting:
        assert member_api.post(f"/api/v1/tasks/{task.pk}/start/").json()["status"] == "queued"

    [queue] = member_api.get("/api/v1/queue/").json()

    assert (queue["name"], queue["queued_count"], queue["free_skus"], queue["total_gpus"]) == ("h100", 3, 0, 16)
    assert [(e["name"], e["position"]) for e in queue["queue"]] == [("q0", 1), ("q1", 2), ("q2", 3)]
    assert [e["name"] for e in queue["mine"]] == ["q0", "q1", "q2"]
    assert queue["pinned"] is None and queue["queue_next"] is None
    assert all(e["reason"] for e in queue["queue"])


def test_the_queue_of_one_cluster_pages_through_its_whole_order(world, member_api, settings):
    from deploy_portal.api import queue as views

    for i, node in enumerate(world.nodes):
        holding_task(world, name=f"big-{i}", node=node, sku_count=8, endpoint_port=30100 + i)
    for i in range(views.FIRST_ENTRIES + 2):
        member_api.post(f"/api/v1/tasks/{world_task(world, name=f'q{i:02d}').pk}/start/")

    [overview] = member_api.get("/api/v1/queue/").json()
    assert len(overview["queue"]) == views.FIRST_ENTRIES and overview["queue_next"]
    [page] = member_api.get(overview["queue_next"]).json()

    assert [e["position"] for e in page["queue"]] == [21, 22]
    assert page["queue_next"] is None and page["queue_previous"]


def test_the_queue_of_an_unseen_cluster_is_404(member_api):
    hidden = VirtualClusterFactory(name="hidden")

    assert member_api.get(f"/api/v1/queue/?virtual_cluster={hidden.pk}").status_code == 404


# Each list's queries, whatever the page holds: the token's user, its permissions (2) where the scope asks
# for them, a count, the page, then per list: the tasks' mounts and the queue info of the queued ones (4);
# the clusters' capacity (3); the queue's clusters, held SKUs, machines and queued tasks (4).
LIST_QUERIES = {
    "/api/v1/tasks/": 10,
    "/api/v1/projects/": 3,
    "/api/v1/virtual-clusters/": 8,
    "/api/v1/storages/": 3,
    "/api/v1/queue/": 7,
    "/api/v1/tasks/{task}/events/": 6,
    "/api/v1/tasks/{task}/instances/": 6,
}


def grow(world, timeline, start, stop):
    """More of everything a list shows: tasks (queued, running with instances), projects, VCs, storages,
    and events (by different actors) and instances of the ``timeline`` task."""
    node = world.nodes[1]
    for i in range(start, stop):
        event_record(task=timeline, operation="note", actor=UserFactory(), message=f"note {i}")
        TaskInstance.objects.create(
            task=timeline, run=current_run(timeline), index=i + 1, node=node, node_name=node.name, gpu_type=node.gpu_type, sku_count=1,
            gpu_count=1,
        )
        project = ProjectFactory(members=[world.member])
        VirtualClusterFactory(users=[world.member])
        StorageFactory(projects=[project])
        holding_task(world, name=f"run-{i}", endpoint_port=30200 + i, project=project)
        world_task(world, name=f"queued-{i}", status=Status.QUEUED, queued_at="2026-01-01T00:00:00Z")


@pytest.mark.parametrize("url, queries", LIST_QUERIES.items(), ids=LIST_QUERIES.keys())
def test_list_queries_do_not_grow_with_the_page(world, member_api, django_assert_max_num_queries, url, queries):
    task = holding_task(world, name="timeline")
    member_api.post(f"/api/v1/tasks/{task.pk}/stop/")
    url = url.format(task=task.pk) + "?page_size=50"
    grow(world, task, 0, 2)
    member_api.get(url)  # what a process reads once (content types) is not the list's cost

    with django_assert_max_num_queries(queries):
        assert member_api.get(url).status_code == 200
    grow(world, task, 2, 25)
    with django_assert_max_num_queries(queries):
        response = member_api.get(url)
    assert response.status_code == 200
    page = response.json()
    assert len(page["results"] if "results" in page else page[0]["queue"]) >= 20


def test_project_and_owner_filter_alike_by_id_or_by_name(world, member_api, mixed_tasks):
    bob = mixed_tasks["c-stopped"].owner
    other = ProjectFactory(name="vision", members=[world.member])
    world_task(world, name="e-vision", project=other)
    by_name = names(member_api.get("/api/v1/tasks/?project=vision"))
    assert by_name == names(member_api.get(f"/api/v1/tasks/?project={other.pk}")) == ["e-vision"]
    assert names(member_api.get(f"/api/v1/tasks/?owner={bob.pk}&ordering=name")) == ["c-stopped", "d-failed"]
    assert names(member_api.get("/api/v1/tasks/?owner=bob&ordering=name")) == ["c-stopped", "d-failed"]
    assert names(member_api.get(f"/api/v1/tasks/?virtual_cluster={world.vc.name}&project=llm&ordering=name")) == [
        "a-idle", "b-running", "c-stopped", "d-failed",
    ]
    assert member_api.get("/api/v1/tasks/?project=nosuch").status_code == 400


def test_status_takes_a_comma_separated_list(member_api, mixed_tasks):
    assert names(member_api.get("/api/v1/tasks/?status=running,stopped&ordering=name")) == ["b-running", "c-stopped"]
    assert member_api.get("/api/v1/tasks/?status=running,sleeping").status_code == 400


def test_the_ordering_choices_are_said_in_chinese(member_api):
    from django.utils import translation

    from tasks.filtersets import TaskFilterSet

    with translation.override("zh-hans"):
        labels = [str(label) for _value, label in TaskFilterSet(data={}).form.fields["ordering"].choices]
    assert "ID（降序）" in labels and "排队时间（降序）" in labels
    assert all(not any(c.isascii() and c.isalpha() for c in label.replace("ID", "")) for label in labels), labels
