"""The failure table: each pod status and event maps to the right instance state and sentence."""

from datetime import UTC, datetime, timedelta

import pytest

from deploy_portal.messages import render
from scheduler.runtimes.kubernetes.failures import classify_pod
from tasks.models import InstanceStatus

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
IMAGE = "registry.example.com/team/model:v2"


def pod(container_status=None, *, phase="Pending", conditions=(), reason=None, message=None):
    status = {"phase": phase, "conditions": list(conditions)}
    if container_status is not None:
        status["containerStatuses"] = [
            {"name": "model", "image": IMAGE, "restartCount": 0, "ready": False, **container_status}
        ]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {
        "metadata": {
            "name": "dp-task-7-0",
            "labels": {"deploy-portal/instance-index": "0"},
            "creationTimestamp": (NOW - timedelta(minutes=10)).isoformat(),
        },
        "spec": {"containers": [{"name": "model", "image": IMAGE}]},
        "status": status,
    }


def waiting(reason, message=""):
    return {"state": {"waiting": {"reason": reason, "message": message}}}


def classify(p, events=()):
    return classify_pod(p, events, now=NOW, unschedulable_grace=120)


MANIFEST_UNKNOWN = f'rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}": manifest unknown'


@pytest.mark.parametrize(
    ("container", "state", "words"),
    [
        (
            waiting("ErrImagePull", MANIFEST_UNKNOWN),
            InstanceStatus.FAILED,
            f"Image {IMAGE} cannot be pulled: manifest unknown — check the tag.",
        ),
        (
            waiting(
                "ErrImagePull",
                "pull access denied, repository does not exist or may require authorization: unauthorized",
            ),
            InstanceStatus.FAILED,
            "check the image pull secret",
        ),
        (
            waiting("ErrImagePull", "dial tcp 10.0.0.5:443: i/o timeout"),
            InstanceStatus.PENDING,
            "cannot be pulled: dial tcp",
        ),
        (waiting("ImagePullBackOff", 'Back-off pulling image "x"'), InstanceStatus.FAILED, "check the image address"),
        (
            waiting("InvalidImageName", 'couldn\'t parse image name "Bad:Image"'),
            InstanceStatus.FAILED,
            "is not valid: couldn't parse image name",
        ),
        (
            waiting("CreateContainerConfigError", 'secret "hf-token" not found'),
            InstanceStatus.FAILED,
            'The container cannot be created: secret "hf-token" not found',
        ),
        (
            {
                **waiting("CrashLoopBackOff"),
                "restartCount": 4,
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
            },
            InstanceStatus.FAILED,
            "keeps crashing (exit code 1, Error; restarted 4 times)",
        ),
        (
            {
                **waiting("CrashLoopBackOff"),
                "restartCount": 1,
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
            },
            InstanceStatus.FAILED,
            "OOMKilled — the instance ran out of memory; raise SKU count.",
        ),
        ({"state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}, InstanceStatus.FAILED, "OOMKilled"),
        (
            {"state": {"terminated": {"reason": "Error", "exitCode": 135}}},
            InstanceStatus.FAILED,
            "/dev/shm full (the process died of a bus error) — set SHM_SIZE larger.",
        ),
        (
            {
                **waiting("CrashLoopBackOff"),
                "restartCount": 2,
                "lastState": {"terminated": {"reason": "Error", "exitCode": 135}},
            },
            InstanceStatus.FAILED,
            "/dev/shm full",
        ),
        (waiting("ContainerCreating"), InstanceStatus.PENDING, "Starting: ContainerCreating."),
        ({"state": {"running": {"startedAt": NOW.isoformat()}}}, InstanceStatus.STARTING, "readiness probe"),
    ],
)
def test_container_states(container, state, words):
    observation = classify(pod(container))
    assert observation.status == state
    assert words in render(observation.message)
    assert observation.index == 0


def test_ready_needs_the_container_and_the_pod_ready():
    running = {"state": {"running": {}}, "ready": True, "restartCount": 2}
    observation = classify(pod(running, phase="Running", conditions=[{"type": "Ready", "status": "True"}]))
    assert observation.status == InstanceStatus.READY and observation.restarts == 2
    assert (
        classify(pod(running, phase="Running", conditions=[{"type": "Ready", "status": "False"}])).status
        == InstanceStatus.STARTING
    )


def test_pull_detail_comes_from_the_events_when_the_status_is_terse():
    events = [
        {
            "reason": "Failed",
            "message": f"Failed to pull image {IMAGE}: {MANIFEST_UNKNOWN}",
            "lastTimestamp": NOW.isoformat(),
        }
    ]
    observation = classify(pod(waiting("ErrImagePull", "")), events)
    assert observation.status == InstanceStatus.FAILED and "manifest unknown — check the tag" in render(observation.message)


@pytest.mark.parametrize(("age", "state"), [(30, InstanceStatus.PENDING), (121, InstanceStatus.FAILED)])
def test_unschedulable_fails_once_it_lasts(age, state):
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/4 nodes are available: 1 Insufficient nvidia.com/gpu.",
        "lastTransitionTime": (NOW - timedelta(seconds=age)).isoformat().replace("+00:00", "Z"),
    }
    observation = classify(pod(None, conditions=[condition]))
    assert observation.status == state
    assert (
        "cannot be scheduled on its machine: 0/4 nodes are available: 1 Insufficient nvidia.com/gpu."
        in render(observation.message)
    )


def test_unschedulable_detail_from_failed_scheduling_events():
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "lastTransitionTime": (NOW - timedelta(seconds=600)).isoformat(),
    }
    events = [{"reason": "FailedScheduling", "message": "0/4 nodes are available: node(s) didn't match node affinity."}]
    observation = classify(pod(None, conditions=[condition]), events)
    assert observation.status == InstanceStatus.FAILED and "didn't match node affinity" in render(observation.message)


@pytest.mark.parametrize(
    ("reason", "message"), [("Evicted", "The node was low on resource: memory."), ("NodeLost", None)]
)
def test_evicted_or_lost_pods_fail(reason, message):
    observation = classify(pod({"state": {}}, phase="Failed", reason=reason, message=message))
    assert observation.status == InstanceStatus.FAILED
    assert (message or reason) in render(observation.message)


def test_a_mount_problem_is_reported_while_pending():
    events = [
        {
            "reason": "FailedMount",
            "message": 'MountVolume.SetUp failed for volume "storage-0" : mount failed: exit status 32',
        }
    ]
    observation = classify(pod(waiting("ContainerCreating")), events)
    assert observation.status == InstanceStatus.PENDING and "storage cannot be mounted" in render(observation.message)


def test_a_container_ready_again_after_an_oom_restart_is_not_failed():
    """restartPolicy is Always: an OOMKilled in lastState of a container the kubelet restarted and that is ready
    again does not fail the instance (it used to, at once); one not ready again still does."""
    ready = {"type": "Ready", "status": "True"}
    again = {
        "state": {"running": {}}, "ready": True, "restartCount": 1,
        "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
    }
    assert classify(pod(again, phase="Running", conditions=[ready])).status == InstanceStatus.READY
    starting = {**again, "ready": False}
    observation = classify(pod(starting, phase="Running", conditions=[{"type": "Ready", "status": "False"}]))
    assert observation.status == InstanceStatus.FAILED and "OOMKilled" in render(observation.message)
