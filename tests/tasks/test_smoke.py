import pytest

from tasks.services import task_copy, task_create
from tasks.states import Status
from tests.factories import task_data


@pytest.mark.django_db
def test_create_and_copy(world):
    task = task_create(user=world.member, data=task_data(world))
    assert task.status == Status.NOT_DEPLOYED
    copy = task_copy(task=task, user=world.member, overrides={"sku_count": 4})
    assert copy.sku_count == 4 and copy.image == task.image
    assert [m.mount_path for m in copy.mounts.all()] == ["/models"]
