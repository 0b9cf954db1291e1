"""Chinese without English in it: every page of the portal and every message of the catalogue, in zh-hans.

A Latin word is allowed when it is a proper noun or an identifier the reader types or reads as such (GPU,
SKU, API, curl, hostPath, …), a value of the page's own data (a task's name, an image, a username), or
inside ``<code>``, ``<pre>``, ``<time>``, ``<script>`` and ``<style>``. Anything else is an untranslated word.
"""

import re
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from evaluations.models import Evaluation, EvaluationStatus
from tasks.models import InstanceStatus, Task, TaskInstance
from tasks.services import task_create
from tasks.states import Status
from tests.factories import PASSWORD, ManagerFactory, current_run, task_data
from tests.test_translations import entries

# Proper nouns, units and identifiers a Chinese engineer reads in Latin letters.
ALLOWED = {
    "api", "gpu", "gpus", "sku", "skus", "cpu", "gib", "mib", "id", "ids", "token", "url", "http", "https", "json",
    "fifo", "nfs", "pvc", "persistentvolumeclaim", "hostpath", "curl", "openai", "v1", "models", "model", "port",
    "shm_size", "cuda_visible_devices", "deploy_timeout_seconds", "python", "m", "demo_model", "ttft", "itl",
    "tpot", "e2e", "e2el", "p50", "p90", "p99", "ms", "s", "kubernetes", "pod", "nodeport", "entrypoint",
    "docker", "vllm", "tgi", "nvidia", "h100", "nvidia-h100", "get", "post", "patch", "delete", "swagger",
    "openapi", "redoc", "django", "htmx", "celery", "tail", "download", "page", "page_size", "next", "previous",
    "virtual_cluster", "status", "project", "owner", "ordering", "search", "task_type", "true", "false", "null",
    "authorization", "content-type", "application", "messages", "role", "user", "content", "hello", "max_tokens",
    "stream", "usage", "include_usage", "stream_options", "prompt", "completions", "chat", "imagepullbackoff",
    "errimagepull", "crashloopbackoff", "oomkilled", "sigterm", "sigkill", "pid", "localhost", "env",
    "dev", "shm", "proc", "sys", "etc", "b", "kb", "mb", "gb", "g", "gi", "mi", "k8s", "uid", "queue", "tasks",
    "storages", "virtual-clusters", "instances", "evaluations", "schema", "docs", "auth", "logs", "events",
    "copy", "force-start", "start", "stop", "pin", "unpin", "txt", "english", "csrf", "n",
    "csv", "webhook", "nul", "root", "runasnonroot", "celery", "secret", "bearer",
}
WORD = re.compile(r"[A-Za-z]+")
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|%[sd]|\{[a-z_]+\}")
# A token with a digit or one of these is an identifier, a path or an address, read as written.
IDENTIFIER = re.compile(r"[0-9/_.:=$@`{}\\]")


class _Text(HTMLParser):
    SKIP = {"code", "pre", "time", "script", "style"}

    def __init__(self):
        super().__init__()
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.depth += 1
        for name, value in attrs:  # what a reader sees of the attributes
            if name in ("title", "placeholder", "aria-label", "alt") and value and not self.depth:
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def latin_words(text, allowed=frozenset()):
    found = set()
    for token in PLACEHOLDER.sub(" ", text).split():
        if IDENTIFIER.search(token):
            continue
        for word in WORD.findall(token):
            if word.lower() not in ALLOWED and word.lower() not in allowed:
                found.add(word)
    return found


def test_no_catalogue_message_says_english_in_chinese():
    offenders = {}
    for _flags, msgid, _plural, strings in entries():
        for text in strings:
            words = latin_words(re.sub(r"`[^`]*`", " ", text))
            if words:
                offenders[msgid] = sorted(words)
    assert offenders == {}


@pytest.fixture
def zh_world(world, db, anyone_sets_commands):
    manager = ManagerFactory(username="lixiao")
    idle = task_create(user=world.member, data=task_data(world, name="qwen-idle", command=["python3", "-m", "x"]))
    queued = task_create(user=world.member, data=task_data(world, name="qwen-queued"))
    Task.objects.filter(pk=queued.pk).update(status=Status.QUEUED, pinned=True)
    running = task_create(user=world.member, data=task_data(world, name="qwen-running"))
    Task.objects.filter(pk=running.pk).update(status=Status.DEPLOYING)
    TaskInstance.objects.create(
        task=running, run=current_run(running), index=0, node=world.nodes[0], node_name=world.nodes[0].name, gpu_type="NVIDIA-H100",
        sku_count=2, gpu_count=2, status=InstanceStatus.STARTING,
    )
    Evaluation.objects.create(
        task=running, status=EvaluationStatus.SUCCEEDED, request_count=5, results={},
        task_config={"image": "registry.example.com/llm/vllm:0.6.0", "sku_count": 2, "replicas": 1},
    )
    client = Client()
    client.cookies["django_language"] = "zh-hans"
    assert client.login(username=manager.username, password=PASSWORD)
    data = {"qwen", "idle", "queued", "running", "alice", "lixiao", "llm", "h100", "models", "registry", "example",
            "com", "vllm", "python3", "x", "gpu-00", "gpu-01", "nvidia-h100"}
    return client, {"idle": idle, "queued": queued, "running": running}, data


def test_every_page_speaks_only_chinese_in_zh_hans(zh_world):
    client, tasks, data = zh_world
    pages = [
        reverse("portal:task-list"), reverse("portal:task-create"), reverse("portal:queue-page"),
        reverse("portal:token"), reverse("evaluations:list"),
        *[reverse("portal:task-detail", args=[t.pk]) for t in tasks.values()],
        *[reverse("portal:task-instances", args=[t.pk]) for t in tasks.values()],
        reverse("portal:task-copy", args=[tasks["idle"].pk]), reverse("portal:task-edit", args=[tasks["idle"].pk]),
        reverse("portal:task-operation", args=[tasks["queued"].pk, "force_start"]),
        reverse("portal:task-operation", args=[tasks["queued"].pk, "stop"]),
        reverse("portal:task-operation", args=[tasks["idle"].pk, "delete"]),
    ]
    offenders = {}
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        parser = _Text()
        parser.feed(response.content.decode())
        words = latin_words(" ".join(parser.parts), allowed=data)
        if words:
            offenders[path] = sorted(words)
    assert offenders == {}
