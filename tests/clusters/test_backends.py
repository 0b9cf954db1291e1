"""The permission backend: Django's answers, in one query instead of two, and sessions of Django's own backend
still signed in."""

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission

from clusters.backends import PermissionBackend
from clusters.permissions import PIN_TASK, VIEW_ALL_TASKS, is_manager, perm
from tests.factories import PASSWORD, ManagerFactory, UserFactory

pytestmark = pytest.mark.django_db


def fresh(user):
    return get_user_model().objects.get(pk=user.pk)  # no permission cache


def permission(codename):
    return Permission.objects.get(content_type__app_label="tasks", codename=codename)


def test_own_and_group_permissions_come_in_one_query_and_agree_with_djangos(django_assert_num_queries):
    user = UserFactory()
    user.user_permissions.add(permission(PIN_TASK))
    group = Group.objects.create(name="viewers")
    group.permissions.add(permission(VIEW_ALL_TASKS))
    user.groups.add(group)
    fresh_user = fresh(user)
    with django_assert_num_queries(1):
        mine = PermissionBackend().get_all_permissions(fresh_user)
        assert fresh_user.has_perm(perm(PIN_TASK)) and fresh_user.has_perm(perm(VIEW_ALL_TASKS))
        assert not fresh_user.has_perm("tasks.delete_task")
    assert mine == ModelBackend().get_all_permissions(fresh(user)) == {perm(PIN_TASK), perm(VIEW_ALL_TASKS)}


def test_a_manager_is_known_in_one_query_and_a_member_is_not_one(django_assert_num_queries):
    manager, member = fresh(ManagerFactory()), fresh(UserFactory())
    with django_assert_num_queries(2):
        assert is_manager(manager) and is_manager(manager)  # asked twice: cached
        assert not is_manager(member) and not is_manager(member)


def test_an_inactive_user_has_no_permissions():
    user = ManagerFactory()
    user.is_active = False
    user.save()
    assert PermissionBackend().get_all_permissions(fresh(user)) == set()
    assert not is_manager(fresh(user))


def test_a_login_checks_the_password_once_and_its_session_names_djangos_backend(client, monkeypatch):
    user = UserFactory(username="erin")
    checked = []
    check_password = type(user).check_password
    monkeypatch.setattr(type(user), "check_password", lambda self, raw: checked.append(raw) or check_password(self, raw))
    assert not client.login(username="erin", password="wrong")
    assert checked == ["wrong"]  # not once per backend
    assert client.login(username="erin", password=PASSWORD)
    assert client.session[BACKEND_SESSION_KEY] == "django.contrib.auth.backends.ModelBackend"
    assert client.get("/api/v1/tasks/", HTTP_ACCEPT="application/json").status_code == 200
    assert user.pk == int(client.session["_auth_user_id"])
