"""A portal with something in every state, for the screenshots: built through the services, then
moved to each state the way the scheduler would leave it (no worker needed)."""

from datetime import timedelta
from types import SimpleNamespace

from django.utils import timezone

from deploy_portal.messages import N_, Sentence
from tasks.models import InstanceStatus, Task, TaskEvent, TaskInstance
from tasks.services import event_record, task_create
from tasks.states import Status
from tests.factories import (
    current_run,
    ManagerFactory,
    NodeFactory,
    ProjectFactory,
    StorageFactory,
    UserFactory,
    VirtualClusterFactory,
    task_data,
)

SERVING_LOG = """\
INFO 11-28 09:12:03 api_server.py:512] vLLM API server version 0.6.0
INFO 11-28 09:12:03 api_server.py:513] args: model=/models/Qwen2-72B-Instruct, tensor_parallel_size=4
INFO 11-28 09:12:41 model_runner.py:1025] Loading model weights took 33.91 GB
INFO 11-28 09:13:10 gpu_executor.py:122] # GPU blocks: 18652, # CPU blocks: 3276
INFO 11-28 09:13:12 launcher.py:19] Available routes are: /v1/models, /v1/completions, /v1/chat/completions
INFO:     Started server process [41]
INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)
INFO:     10.0.3.17:51234 - "GET /v1/models HTTP/1.1" 200 OK
INFO:     10.0.3.17:51240 - "POST /v1/chat/completions HTTP/1.1" 200 OK
"""


def build():
    alice = UserFactory(username="alice")
    manager = ManagerFactory(username="lixiao")
    project = ProjectFactory(name="llm-serving", members=[alice])
    h100 = VirtualClusterFactory(name="h100-pool", gpu_type="NVIDIA-H100-80GB", users=[alice])
    a100 = VirtualClusterFactory(name="a100-pool", gpu_type="NVIDIA-A100-40GB", sku_gpus=1, sku_cpus=8,
                                 sku_memory_gib=80, users=[alice])
    h_nodes = [NodeFactory(virtual_cluster=h100, name=f"gpu-h100-{i:02d}", sku_capacity=8) for i in range(2)]
    a_nodes = [NodeFactory(virtual_cluster=a100, name="gpu-a100-01", sku_capacity=4)]
    world = SimpleNamespace(member=alice, project=project, vc=h100, nodes=h_nodes,
                            storage=StorageFactory(name="model-weights", projects=[project]))
    StorageFactory(name="datasets", projects=[project], read_only=True)

    def make(name, vc, status, *, sku_count=2, replicas=1, nodes=(), **fields):
        task = task_create(user=alice, data=task_data(
            world, name=name, virtual_cluster=vc, sku_count=sku_count, replicas=replicas,
            command=["python3", "-m", "vllm.entrypoints.openai.api_server"],
            args=["--model", f"/models/{name}", "--tensor-parallel-size", str(sku_count)],
            env=[{"name": "SHM_SIZE", "value": "60G"}, {"name": "HF_HUB_OFFLINE", "value": "1"}],
            mounts=[{"storage": world.storage, "mount_path": "/models"}],
        ))
        Task.objects.filter(pk=task.pk).update(status=status, **fields)
        for index, node in enumerate(nodes):
            TaskInstance.objects.create(
                task=task, run=current_run(task), index=index, node=node, node_name=node.name, gpu_type=node.gpu_type,
                sku_count=sku_count, gpu_count=sku_count * vc.sku_gpus, gpu_indices=list(range(sku_count)),
                status=InstanceStatus.READY if status == Status.RUNNING else InstanceStatus.STARTING,
                log_archive=SERVING_LOG, log_archived=True,
            )
        task.refresh_from_db()
        return task

    now = timezone.now()
    serving = make("qwen2-72b-instruct", h100, Status.RUNNING, sku_count=4, replicas=2, nodes=h_nodes,
                   endpoint_port=31555, started_at=now)
    for operation, before, after, message in (
        ("start", Status.NOT_DEPLOYED, Status.DEPLOYING, "started and placed"),
        ("ready", Status.DEPLOYING, Status.RUNNING, "every instance is ready"),
    ):
        event_record(task=serving, operation=operation, actor=alice if operation == "start" else None,
                     message=message, from_status=before, to_status=after)
    deploying = make("llama3-8b", h100, Status.DEPLOYING, sku_count=1, nodes=h_nodes[:1], endpoint_port=31556,
                     started_at=now)
    deploying.instances.update(message=Sentence(N_("Waiting for the process to listen on port %(port)s."), port=31556))
    queued = [
        make("mixtral-8x22b", h100, Status.QUEUED, sku_count=8, queued_at=now - timedelta(minutes=9), pinned=True),
        make("deepseek-v2-lite", h100, Status.QUEUED, sku_count=4, queued_at=now - timedelta(minutes=5)),
    ]
    _queue_history(queued, now - timedelta(days=1))
    make("bge-reranker", a100, Status.FAILED, sku_count=1,
         status_message="OOMKilled — the instance ran out of memory; raise SKU count.")
    make("glm4-9b-chat", a100, Status.STOPPED, sku_count=1)
    make("yi-34b", a100, Status.KILLED, sku_count=2,
         status_message="Killed to make room for “mixtral-8x22b”, force-started by lixiao.")
    make("qwen2-7b-draft", a100, Status.NOT_DEPLOYED, sku_count=1)
    return SimpleNamespace(member=alice, manager=manager, serving=serving, deploying=deploying, queued=queued,
                           vcs=[h100, a100], nodes=h_nodes + a_nodes)


def _queue_history(tasks, since, *, starts=8, every=timedelta(minutes=25)):
    """Yesterday's busy queue, for the wait estimate: ``starts`` starts from it, one every ``every``, each
    task enqueued again before the other one started (the two tasks take turns)."""
    for index in range(starts):
        task = tasks[index % 2]
        started = since + every * index
        for at, operation, before, after in ((started - every / 2 - every, "enqueue", Status.STOPPED, Status.QUEUED),
                                             (started, "place", Status.QUEUED, Status.DEPLOYING)):
            event = TaskEvent.objects.create(task=task, operation=operation, from_status=before, to_status=after)
            TaskEvent.objects.filter(pk=event.pk).update(created_at=at)
