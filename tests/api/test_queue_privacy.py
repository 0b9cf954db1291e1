"""The queue shown to a user of another project (issue 14): a task of a project the user is not in appears without
its name and owner ("a task of another project") to non-managers, in queue/, the sidebar and reasons."""

import pytest
from django.utils import timezone

from tests.api.conftest import api_client
from tests.factories import ManagerFactory, ProjectFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db
HIDDEN = "a task of another project"


@pytest.fixture
def shared_queue(world):
    """One VC shared by two projects; the other project's task is pinned at the head, waiting for 16 SKUs."""
    other_user = UserFactory(username="zoe")
    other = ProjectFactory(name="secret-project", members=[other_user])
    world.vc.users.add(other_user)
    now = timezone.now()
    secret = TaskFactory(name="secret-launch-model", project=other, virtual_cluster=world.vc, owner=other_user,
                         status="queued", pinned=True, sku_count=8, replicas=3, queued_at=now)
    mine = TaskFactory(name="my-task", project=world.project, virtual_cluster=world.vc, owner=world.member,
                       status="queued", sku_count=1, queued_at=now + timezone.timedelta(seconds=1))
    return secret, mine


def test_the_queue_api_hides_another_projects_task_from_a_member(world, shared_queue):
    secret, mine = shared_queue
    (vc,) = api_client(world.member).get("/api/v1/queue/").json()
    head, second = vc["queue"]
    assert head["id"] == secret.pk and head["name"] == HIDDEN and head["owner"] is None
    assert vc["pinned"]["name"] == HIDDEN
    assert "secret" not in str(vc) and "zoe" not in str(vc)
    assert second["name"] == "my-task" and second["owner"] == "alice"
    assert second["reason"].startswith("waits behind the pinned task, a task of another project")


def test_a_manager_and_the_other_projects_member_see_everything(world, shared_queue):
    secret, _mine = shared_queue
    for user in (ManagerFactory(username="boss"), secret.owner):
        (vc,) = api_client(user).get("/api/v1/queue/").json()
        assert vc["queue"][0]["name"] == "secret-launch-model" and vc["queue"][0]["owner"] == "zoe"


def test_the_reason_on_the_task_and_the_sidebar_do_not_name_it(world, shared_queue, client):
    _secret, mine = shared_queue
    task = api_client(world.member).get(f"/api/v1/tasks/{mine.pk}/").json()
    assert "a task of another project" in task["pending_reason"] and "secret" not in task["pending_reason"]
    client.force_login(world.member)
    page = client.get(f"/tasks/{mine.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "secret-launch-model" not in page and "zoe" not in page


def test_the_sidebar_region_does_not_name_or_link_it(world, shared_queue, client):
    secret, _mine = shared_queue
    client.force_login(world.member)
    sidebar = client.get("/queue/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert HIDDEN in sidebar and "secret-launch-model" not in sidebar
    assert f"/tasks/{secret.pk}/" not in sidebar
