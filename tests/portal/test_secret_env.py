"""A secret env var on the portal: masked on the task's page, never written into its forms (a blank value keeps
the saved one, on an edit and a copy), and masked in an evaluation's snapshot and the comparison table."""

import pytest
from django.urls import reverse

from evaluations.models import EvaluationStatus
from evaluations.services import evaluation_create
from tasks.models import Task
from tasks.secrets import MASK, env_open, env_seal
from tests.api.conftest import api_client
from tests.evaluations.conftest import running_task
from tests.factories import task_data
from tests.portal.conftest import form_data

pytestmark = pytest.mark.django_db
TOKEN = "hf_s3cr3t-value-that-must-never-show"


def _opened(pk):
    return {name: (value, secret) for name, value, secret in env_open(Task.objects.get(pk=pk).env)}


@pytest.fixture
def created(world):
    from tasks.services import task_create

    env = [{"name": "SHM_SIZE", "value": "60G"}, {"name": "HF_TOKEN", "value": TOKEN, "secret": True}]
    return {"id": task_create(user=world.member, data=task_data(world, env=env)).pk}


def test_the_portal_masks_a_secret_and_its_forms_keep_it_when_left_blank(world, member_client, created):
    pk = created["id"]
    detail = member_client.get(reverse("portal:task-detail", args=[pk])).content.decode()
    assert f"HF_TOKEN={MASK}" in detail and TOKEN not in detail
    for name in ("portal:task-edit", "portal:task-copy"):
        page = member_client.get(reverse(name, args=[pk])).content.decode()
        assert TOKEN not in page
        assert 'type="password" name="env-1-value" value=""' in page and "Saved: leave blank to keep it" in page
    posted = form_data(world, **{"env-1-name": "HF_TOKEN", "env-1-value": "", "env-1-secret": "on"})
    edited = member_client.post(reverse("portal:task-edit", args=[pk]), posted)
    assert edited.status_code == 302, edited.content.decode()
    assert _opened(pk)["HF_TOKEN"] == (TOKEN, True)
    copied = member_client.post(reverse("portal:task-copy", args=[pk]), {**posted, "name": "the copy"})
    assert copied.status_code == 302
    copy = Task.objects.get(name="the copy")
    assert _opened(copy.pk)["HF_TOKEN"] == (TOKEN, True)


def test_a_secret_typed_in_the_create_form_is_sealed_and_not_sent_back_on_an_error(world, member_client):
    posted = form_data(world, **{"env-1-name": "HF_TOKEN", "env-1-value": f"{TOKEN} ", "env-1-secret": "on"})
    refused = member_client.post(reverse("portal:task-create"), {**posted, "sku_count": "0"})
    assert refused.status_code == 200 and TOKEN not in refused.content.decode()
    assert 'placeholder="Enter the value"' in refused.content.decode()
    saved = member_client.post(reverse("portal:task-create"), posted)
    assert saved.status_code == 302
    assert _opened(Task.objects.get().pk)["HF_TOKEN"] == (f"{TOKEN} ", True)  # a secret is taken as typed


def test_an_evaluation_snapshots_a_secret_masked_and_its_table_shows_the_mask(world, member_client, monkeypatch):
    from evaluations import tasks as evaluation_tasks

    monkeypatch.setattr(evaluation_tasks.run_evaluation, "delay", lambda pk: None)
    env = env_seal([{"name": "HF_TOKEN", "value": TOKEN, "secret": True}])
    task = running_task(world, port=31998, env=env)
    evaluation = evaluation_create(task=task, user=world.member, parameters={"request_count": 2})
    assert evaluation.task_config["env"] == [{"name": "HF_TOKEN", "value": MASK, "secret": True}]
    evaluation.status, evaluation.results = EvaluationStatus.SUCCEEDED, {"completed": 2}
    evaluation.save()
    table = member_client.get(f"/evaluations/?task={task.pk}").content.decode()
    assert f"HF_TOKEN={MASK}" in table and TOKEN not in table
    answer = api_client(world.member).get(f"/api/v1/evaluations/{evaluation.pk}/").content.decode()
    assert TOKEN not in answer and MASK in answer
