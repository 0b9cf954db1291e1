"""Login throttling (django-axes): 30 wrong passwords in a row are not all answered, and then the right one is
refused too, on the portal's form and on the API's token endpoint, until the lockout ends (issue 14)."""

import pytest
from django.urls import reverse

from tests.api.conftest import api_client
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def throttled(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 5


def test_the_portal_form_locks_out_after_repeated_wrong_passwords(client):
    user = UserFactory(username="carol")
    answers = [client.post(reverse("login"), {"username": "carol", "password": "wrong"}).status_code for _ in range(30)]
    assert answers[:4] == [200] * 4 and set(answers[5:]) == {429}
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert "try again later" in response.content.decode() or "稍后再试" in response.content.decode()


def test_the_token_endpoint_locks_out_with_a_json_429(settings):
    UserFactory(username="dave")
    client = api_client()
    answers = [client.post("/api/v1/auth/token/", {"username": "dave", "password": "x"}, format="json").status_code
               for _ in range(30)]
    assert answers[:4] == [400] * 4 and set(answers[5:]) == {429}
    response = client.post("/api/v1/auth/token/", {"username": "dave", "password": PASSWORD}, format="json")
    assert response.status_code == 429
    assert response["Content-Type"].startswith("application/json") and "Retry-After" in response
    assert "try again later" in response.json()["detail"]


def test_a_success_before_the_limit_resets_the_count():
    UserFactory(username="erin")
    client = api_client()
    for _ in range(2):
        for _ in range(4):
            client.post("/api/v1/auth/token/", {"username": "erin", "password": "x"}, format="json")
        assert client.post("/api/v1/auth/token/", {"username": "erin", "password": PASSWORD}, format="json").status_code == 200


def test_another_user_from_the_same_address_is_not_locked_out():
    UserFactory(username="frank")
    UserFactory(username="grace")
    client = api_client()
    for _ in range(10):
        client.post("/api/v1/auth/token/", {"username": "frank", "password": "x"}, format="json")
    assert client.post("/api/v1/auth/token/", {"username": "grace", "password": PASSWORD}, format="json").status_code == 200
