"""The personal API token page: see, create, replace and revoke; the API takes the token at once."""

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django.asserts import assertContains
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _api(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/tasks/").status_code


def test_create_replace_and_revoke_a_token(member_client, world):
    page = member_client.get(reverse("portal:token"))
    assertContains(page, "You have no API token.")
    member_client.post(reverse("portal:token-create"))
    first = Token.objects.get(user=world.member).key
    page = member_client.get(reverse("portal:token"))
    assertContains(page, first)
    assertContains(page, f'curl -H "Authorization: Token {first}"')
    assert _api(first) == 200

    member_client.post(reverse("portal:token-create"))
    second = Token.objects.get(user=world.member).key
    assert second != first and _api(first) == 401 and _api(second) == 200

    member_client.post(reverse("portal:token-revoke"))
    assert not Token.objects.filter(user=world.member).exists() and _api(second) == 401


def test_the_token_page_asks_for_a_login_and_a_post(member_client):
    assert Client().get(reverse("portal:token")).status_code == 302
    assert member_client.get(reverse("portal:token-create")).status_code == 405
