"""Stored messages are said in each reader's language, whoever wrote them and in whatever language they worked."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils.html import escape
from django.utils import translation
from rest_framework.test import APIClient

from deploy_portal.messages import N_, NP_, Literal, Sentence, joined
from scheduler.runtimes.local.runtime import exit_sentence
from scheduler.services import task_fail, task_start
from tasks.models import Task, TaskEvent
from tests.factories import PASSWORD, ProjectFactory, TaskFactory, UserFactory, VirtualClusterFactory

KILLED = "Killed to make room for “%(task)s”, force-started by %(manager)s."


def said(sentence, language):
    with translation.override(language):
        return str(sentence)


def test_a_sentence_is_rendered_in_the_active_language_with_its_parameters():
    sentence = Sentence(N_(KILLED), task="urgent", manager="boss")
    assert said(sentence, "en") == "Killed to make room for “urgent”, force-started by boss."
    assert said(sentence, "zh-hans") == "已被杀死：管理员 boss 强制启动了“urgent”，需为其腾出资源。"


def test_plurals_nested_sentences_and_joins_follow_the_language():
    ahead = [Sentence(NP_("%(count)s task ahead", "%(count)s tasks ahead"), number="count", count=n) for n in (1, 3)]
    assert [said(s, "en") for s in ahead] == ["1 task ahead", "3 tasks ahead"]
    reason = joined(Sentence(N_("GPUs are free; starting shortly")), ahead[1], sep="; ")
    queued = Sentence(N_("Started and queued: %(reason)s."), reason=reason)
    assert said(queued, "en") == "Started and queued: GPUs are free; starting shortly; 3 tasks ahead."
    assert "前面还有 3 个任务" in said(queued, "zh-hans") and "tasks ahead" not in said(queued, "zh-hans")


def test_data_round_trips_and_text_from_outside_is_kept_as_written():
    sentence = Sentence(N_("Instance %(index)s on %(node)s: %(sentence)s"), index=1, node="gpu-01",
                        sentence=exit_sentence({"returncode": 3}))
    assert Sentence.from_data(sentence.to_data()) == sentence
    assert Sentence.from_data("CrashLoopBackOff as Kubernetes said it") == Literal("CrashLoopBackOff as Kubernetes said it")
    assert Sentence.from_data("") == ""


def test_a_translation_cannot_be_stored_frozen_in_one_language():
    with pytest.raises(TypeError):
        Sentence(translation.gettext_lazy("Unpinned."))
    with pytest.raises(TypeError):
        Sentence(N_("Starting: %(detail)s."), detail=translation.gettext_lazy("no machine fits")).to_data()


@pytest.mark.django_db
def test_a_failure_written_by_a_chinese_speaking_worker_reads_in_english_and_in_chinese(world):
    task = task_start(task=TaskFactory(project=world.project, virtual_cluster=world.vc, owner=world.member),
                      user=world.member)
    with translation.override("zh-hans"):  # a Celery worker speaks the site's default language
        task_fail(task_id=task.pk, reason=exit_sentence({"returncode": 137}))
    english = "The process exited with code 137 — check the command and the log."
    event = TaskEvent.objects.filter(task=task).last()
    assert said(event.message, "en") == said(Task.objects.get(pk=task.pk).status_message, "en") == english
    assert said(event.message, "zh-hans") != english

    client = APIClient()
    client.force_authenticate(world.member)
    events = {
        language: client.get(f"/api/v1/tasks/{task.pk}/events/", HTTP_ACCEPT_LANGUAGE=language).json()["results"]
        for language in ("en", "zh-hans")
    }
    assert events["en"][-1]["message"] == english
    assert events["zh-hans"][-1]["message"] == said(event.message, "zh-hans")

    client = APIClient()
    client.login(username=world.member.username, password=PASSWORD)
    admin = APIClient()
    admin.force_login(UserFactory(is_staff=True, is_superuser=True))
    for language in ("en", "zh-hans"):
        client.cookies["django_language"] = admin.cookies["django_language"] = language
        page = client.get(reverse("portal:task-detail", args=[task.pk])).content.decode()
        assert said(event.message, language) in page
        for url in (reverse("admin:tasks_taskevent_changelist"), reverse("admin:tasks_task_change", args=[task.pk])):
            assert escape(said(event.message, language)) in admin.get(url).content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_text_written_before_it():
    task = TaskFactory()  # made with today's model, then the schema goes back to before the sentences
    executor = MigrationExecutor(connection)
    before, after = [("tasks", "0004_task_status_idx_with_id")], executor.loader.graph.leaf_nodes("tasks")
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    OldEvent = apps.get_model("tasks", "TaskEvent")
    OldEvent.objects.create(task_id=task.pk, operation="stop", message="停止了 (written in 2026)")
    apps.get_model("tasks", "Task").objects.filter(pk=task.pk).update(status_message="Stopped by hand.")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    event = TaskEvent.objects.get(task_id=task.pk, operation="stop")
    assert event.message == Literal("停止了 (written in 2026)") and said(event.message, "en") == "停止了 (written in 2026)"
    assert said(Task.objects.get(pk=task.pk).status_message, "zh-hans") == "Stopped by hand."


def test_clauses_are_joined_with_the_languages_own_separator_even_when_stored_before():
    from deploy_portal.messages import CLAUSES
    from scheduler.placement import Wait, WaitCode
    from scheduler.reasons import wait_sentence

    reason = wait_sentence(Wait(code=WaitCode.CAPACITY, sku_count=4, replicas=1, ahead=3, free_total=2))
    assert said(reason, "en") == "needs 4 SKUs in total; 2 free; 3 tasks ahead"
    assert said(reason, "zh-hans") == "共需要 4 个 SKU，空闲 2 个；前面还有 3 个任务"
    stored = Sentence.from_data(reason.to_data())  # as a row written before holds it: the separator as written
    assert stored.to_data()["sep"] == CLAUSES == "; " and said(stored, "zh-hans") == said(reason, "zh-hans")


@pytest.mark.django_db
def test_text_from_outside_with_a_nul_byte_is_stored():
    """A crash log's last lines carried a NUL into a failure message: PostgreSQL refused it, and the observation
    that should have failed the task raised instead, every reconcile, until the deploy timeout."""
    from tasks.models import TaskInstance
    from tests.factories import current_run

    task = TaskFactory()
    instance = TaskInstance.objects.create(
        task=task, run=current_run(task), index=0, node_name="n", gpu_type="g", sku_count=1, gpu_count=1,
        message=Sentence(N_("%(sentence)s Last log lines:\n%(lines)s"), sentence="exit 3", lines="loading\x00weights"),
    )
    instance.refresh_from_db()
    assert said(instance.message, "en") == "exit 3 Last log lines:\nloading\ufffdweights"
