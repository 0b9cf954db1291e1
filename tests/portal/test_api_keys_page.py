"""The keys page: a key made is shown once (only its digest kept), listed by prefix, revoked; its refusals stand
next to the fields. The task page shows the gateway's stable URL and its usage when a gateway is configured."""

import pytest
from django.urls import reverse
from django.utils import timezone

from endpoints.keys import key_digest
from endpoints.models import ApiKey, UsageHour
from tests.factories import ProjectFactory, TaskFactory
from tests.api.conftest import holding_task

pytestmark = pytest.mark.django_db


def test_a_key_is_shown_once_then_listed_by_its_prefix_and_revoked(member_client, world):
    page = member_client.post(reverse("portal:api-keys"), {"name": "laptop", "project": str(world.project.pk)})
    html = page.content.decode()
    key = page.context["made"]
    assert key in html and "not shown again" in html
    api_key = ApiKey.objects.get()
    assert api_key.digest == key_digest(key) and api_key.project == world.project
    listed = member_client.get(reverse("portal:api-keys")).content.decode()
    assert key not in listed and f"dpk_{api_key.prefix}_…" in listed
    member_client.post(reverse("portal:api-key-revoke", args=[api_key.pk]))
    assert ApiKey.objects.get().revoked and "revoked" in member_client.get(reverse("portal:api-keys")).content.decode()


def test_a_key_that_cannot_be_made_says_why_on_its_field(member_client, world):
    page = member_client.post(reverse("portal:api-keys"), {"name": "", "rate_limit": "0"})
    assert page.context["form"].errors.keys() == {"name", "rate_limit"}
    assert not ApiKey.objects.exists()
    # Another's project is not offered, and not accepted.
    other = ProjectFactory()
    page = member_client.post(reverse("portal:api-keys"), {"name": "k", "project": str(other.pk)})
    assert "project" in page.context["form"].errors and not ApiKey.objects.exists()


def test_the_task_page_shows_the_gateway_url_the_direct_address_and_the_days_usage(member_client, world, settings):
    settings.GATEWAY_URL = "http://gw.example:8001"
    task = holding_task(world, name="qwen")
    UsageHour.objects.create(hour=timezone.now().replace(minute=0, second=0, microsecond=0), task=task,
                             project=world.project, requests=7, errors=1, prompt_tokens=30, completion_tokens=70)
    html = member_client.get(reverse("portal:task-detail", args=[task.pk])).content.decode()
    assert 'id="endpoint-url">http://gw.example:8001/llm/qwen/</a>' in html
    assert f'<code data-endpoint="direct">{task.endpoint}</code>' in html
    assert "7 requests" in html and "1 error" in html and "30 prompt tokens, 70 completion tokens" in html
    assert html.count('class="bar"') == 48  # 24 hours, two charts
    settings.GATEWAY_URL = ""
    html = member_client.get(reverse("portal:task-detail", args=[task.pk])).content.decode()
    assert f'id="endpoint-url">{task.endpoint}</a>' in html and "data-usage" not in html


def test_only_the_owner_makes_a_task_public(member_client, world):
    from tasks.services import task_update
    from django.core.exceptions import ValidationError
    from tests.factories import UserFactory

    colleague = UserFactory()
    world.project.members.add(colleague)
    world.vc.users.add(colleague)
    task = TaskFactory(project=world.project, virtual_cluster=world.vc, owner=colleague)
    with pytest.raises(ValidationError) as refused:
        task_update(task=task, user=world.member, data={"public_endpoint": True})
    assert "public_endpoint" in refused.value.message_dict
    task_update(task=task, user=colleague, data={"public_endpoint": True})
    task.refresh_from_db()
    assert task.public_endpoint
