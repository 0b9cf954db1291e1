"""The local runtime with real processes: start, ports and env, readiness, failure, stop, restart, logs."""

import json
import os
import signal
import textwrap

import pytest

from deploy_portal.messages import render
from scheduler.runtimes.local.isolation import demo_python
from scheduler.runtimes.local.records import RecordStore, group_members, is_alive, process_start_time
from scheduler.runtimes.local.runtime import LocalRuntime, read_last_lines
from tasks.models import InstanceStatus
from tasks.secrets import env_seal
from tests.live import free_port, wait_until

pytestmark = pytest.mark.django_db
PYTHON = demo_python()  # an interpreter the instance user (when the tests run as root) can run

# Listens on $PORT after printing its environment; a tiny stand-in for a model server.
SERVER = textwrap.dedent("""
    import json, os, socket, sys
    print(json.dumps({k: os.environ.get(k) for k in ("PORT", "CUDA_VISIBLE_DEVICES", "MODEL", "HF_TOKEN", "SECRET_KEY")}), flush=True)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(os.environ["PORT"]))); s.listen()
    print("listening", flush=True)
    while True:
        s.accept()[0].close()
""")
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ignoring', flush=True); time.sleep(600)"
)


@pytest.fixture
def runtime(tmp_path, settings):
    settings.LOCAL_RUNTIME_DIR = tmp_path / "local"
    rt = LocalRuntime(stop_grace=0.5)
    yield rt
    for workload in rt.workloads():
        rt.remove_workload(workload)


def observe_until(runtime, task, status, timeout=15):
    return wait_until(lambda: (obs := runtime.observe(task.current_run)) and all(o.status == status for o in obs) and obs, timeout)


def test_instances_start_with_env_gpus_and_ports(runtime, placed, world, settings):
    port = free_port()
    task = placed(
        replicas=2,
        sku_count=2,
        command=[PYTHON, "-c", SERVER],
        env=env_seal([{"name": "MODEL", "value": "qwen"}, {"name": "HF_TOKEN", "value": "hf_x", "secret": True}]),
        endpoint_port=port,
        nodes=[world.nodes[0]] * 2,
    )
    runtime.apply(task.current_run)
    observations = observe_until(runtime, task, InstanceStatus.READY)
    assert [o.index for o in observations] == [0, 1]
    assert observations[0].address == f"127.0.0.1:{port}"  # where the gateway reaches each replica
    first, second = (json.loads(runtime.read_log(i).splitlines()[0]) for i in task.instances.order_by("index"))
    # A secret env var reaches the process opened; the worker's own secrets do not.
    assert first == {"PORT": str(port), "CUDA_VISIBLE_DEVICES": "0,1", "MODEL": "qwen", "HF_TOKEN": "hf_x", "SECRET_KEY": None}
    assert second["CUDA_VISIBLE_DEVICES"] == "2,3" and second["PORT"] != str(port)
    low, high = settings.NODEPORT_RANGE
    assert low <= int(second["PORT"]) <= high  # a spare port from the top of the range
    handles = [i.handle for i in task.instances.order_by("index")]
    assert all(
        h.isdigit() and is_alive(runtime.store.load(i.pk))
        for h, i in zip(handles, task.instances.order_by("index"), strict=True)
    )


def test_apply_is_idempotent(runtime, placed):
    task = placed(command=[PYTHON, "-c", SERVER], endpoint_port=free_port())
    runtime.apply(task.current_run)
    runtime.apply(task.current_run)
    assert len(runtime.workloads()) == 1
    (instance,) = task.instances.all()
    assert runtime.store.load(instance.pk).pid == int(instance.handle)


def test_a_command_that_exits_fails_with_its_last_log_lines(runtime, placed):
    task = placed(
        command=["sh", "-c", "echo loading weights; echo 'CUDA error: out of memory' >&2; exit 3"],
        endpoint_port=free_port(),
    )
    runtime.apply(task.current_run)
    (observation,) = observe_until(runtime, task, InstanceStatus.FAILED)
    assert "The process exited with code 3 — check the command and the log." in render(observation.message)
    assert render(observation.message).endswith("loading weights\nCUDA error: out of memory")


def test_a_command_that_cannot_run_fails_saying_so(runtime, placed):
    task = placed(command=["/nonexistent/serve"], endpoint_port=free_port())
    runtime.apply(task.current_run)
    (observation,) = observe_until(runtime, task, InstanceStatus.FAILED)
    assert (
        "The command cannot be run: /nonexistent/serve: No such file or directory — check the command."
        in render(observation.message)
    )


def test_teardown_terms_then_kills_and_forgets(runtime, placed):
    task = placed(replicas=2, command=[PYTHON, "-c", STUBBORN], endpoint_port=free_port())
    runtime.apply(task.current_run)
    records = [runtime.store.load(i.pk) for i in task.instances.all()]
    wait_until(lambda: all("ignoring" in runtime.read_log(i) for i in task.instances.all()), 10)
    runtime.teardown(task.current_run)
    assert not any(is_alive(r) for r in records)
    assert runtime.workloads() == []
    assert [path.name for path in runtime.store.root.iterdir() if path.name != "ports.lock"] == []
    runtime.teardown(task.current_run)  # nothing left: still fine


def test_a_restarted_worker_finds_its_processes_and_notices_dead_ones(runtime, placed, settings):
    task = placed(replicas=2, command=[PYTHON, "-c", SERVER], endpoint_port=free_port())
    runtime.apply(task.current_run)
    observe_until(runtime, task, InstanceStatus.READY)
    restarted = LocalRuntime(stop_grace=0.5)  # a new worker: no memory of what it started
    assert [o.status for o in restarted.observe(task.current_run)] == [InstanceStatus.READY] * 2
    first, second = task.instances.order_by("index")
    os.killpg(runtime.store.load(first.pk).pid, signal.SIGKILL)
    real = runtime.store.load(second.pk)
    # As if the pid now belonged to another process: its start time differs from the recorded one.
    runtime.store.save(type(real)(**{**real.__dict__, "start_time": real.start_time + 1}))
    dead, reused = wait_until(lambda: (obs := restarted.observe(task.current_run))[0].status == InstanceStatus.FAILED and obs, 10)
    assert "vanished" in render(dead.message)
    assert reused.status == InstanceStatus.FAILED and "vanished" in render(reused.message)
    runtime.store.save(real)
    restarted.teardown(task.current_run)
    assert not group_members(real.pid)


def test_a_command_orphaned_by_its_launcher_is_failed_and_still_stopped(runtime, placed):
    task = placed(command=[PYTHON, "-c", SERVER], endpoint_port=free_port())
    runtime.apply(task.current_run)
    observe_until(runtime, task, InstanceStatus.READY)
    record = runtime.store.load(task.instances.get().pk)
    command_pids = [pid for pid in group_members(record.pid) if pid != record.pid]
    assert len(command_pids) == 1
    os.kill(record.pid, signal.SIGKILL)  # the launcher dies; the model it started keeps serving
    (observation,) = observe_until(runtime, task, InstanceStatus.FAILED)
    assert "The process vanished" in render(observation.message)
    runtime.teardown(task.current_run)
    assert group_members(record.pid) == []


def test_a_command_killed_by_sigkill_reads_as_out_of_memory(runtime, placed):
    task = placed(command=[PYTHON, "-c", SERVER], endpoint_port=free_port())
    runtime.apply(task.current_run)
    observe_until(runtime, task, InstanceStatus.READY)
    record = runtime.store.load(task.instances.get().pk)
    (command_pid,) = [pid for pid in group_members(record.pid) if pid != record.pid]
    os.kill(command_pid, signal.SIGKILL)  # what the kernel's OOM killer does
    (observation,) = observe_until(runtime, task, InstanceStatus.FAILED)
    assert "killed (SIGKILL), most likely out of memory — raise SKU count." in render(observation.message)


def test_logs_tail_whole_and_archive(runtime, placed, settings):
    settings.LOG_ARCHIVE_BYTES = 64
    task = placed(command=["sh", "-c", "for i in $(seq 1 20); do echo line-$i; done"], endpoint_port=free_port())
    runtime.apply(task.current_run)
    observe_until(runtime, task, InstanceStatus.FAILED)
    (instance,) = task.instances.all()
    assert runtime.read_log(instance, tail=2) == "line-19\nline-20\n"
    assert runtime.read_log(instance).splitlines() == [f"line-{i}" for i in range(1, 21)]
    runtime.archive_logs(task.current_run)
    runtime.teardown(task.current_run)
    instance.refresh_from_db()
    assert instance.log_archived and instance.log_archive.endswith("line-20\n")
    assert instance.log_archive.startswith("line-") and len(instance.log_archive.encode()) <= 64
    with pytest.raises(LookupError):
        runtime.read_log(instance)


def test_records_tell_a_reused_pid():
    store = RecordStore("/nonexistent")
    assert process_start_time(os.getpid()) is not None
    assert process_start_time(2**22 + 12345) is None
    from scheduler.runtimes.local.records import ProcessRecord

    me = ProcessRecord(
        task_id=1, instance_id=1, index=0, port=1, pid=os.getpid(), start_time=process_start_time(os.getpid())
    )
    assert is_alive(me)
    assert not is_alive(ProcessRecord(**{**me.__dict__, "start_time": me.start_time + 1}))
    assert store.load(1) is None


@pytest.mark.parametrize("block", [5, 7, 64 * 1024])
def test_the_last_lines_of_a_log_are_read_from_its_end(tmp_path, block):
    log = tmp_path / "instance.log"
    lines = [f"第 {i} 行 — step {i}\n" for i in range(2000)]
    log.write_text("".join(lines) + "partial", encoding="utf-8")
    assert read_last_lines(log, 3, block=block) == "".join(lines[-2:]) + "partial"
    assert read_last_lines(log, 5000, block=block) == "".join(lines) + "partial"
    assert read_last_lines(log, 0, block=block) == ""
    (tmp_path / "empty.log").write_bytes(b"")
    assert read_last_lines(tmp_path / "empty.log", 10, block=block) == ""
