"""The failure table: what a pod's status and events mean for the instance, in words.

``classify_pod`` is a pure function over the API's JSON (as ``sanitize_for_serialization``
gives it) and its events. It answers an ``InstanceObservation``: ready, starting, pending, or
failed with the sentence and the hint the user reads. Image-pull errors that cannot pass fail at
once; ones that may pass (a registry hiccup) fail at the first back-off. Unschedulable fails once
it has lasted ``unschedulable_grace`` seconds: GPUs freed a moment ago may still be held by a
terminating pod.
"""

import re
from datetime import datetime

from deploy_portal.messages import N_, Sentence
from tasks.models import InstanceStatus

from ..base import InstanceObservation
from .manifests import CONTAINER, INDEX_LABEL

SIGBUS_EXIT = 135  # 128 + SIGBUS: what a process that touches a full /dev/shm dies of
PERMANENT_PULL_DETAILS = (
    ("manifest unknown", "manifest unknown", N_("check the tag")),
    ("not found", "not found", N_("check the image name and tag")),
    ("unauthorized", "unauthorized", N_("check the image pull secret and the registry permissions")),
    ("denied", "access denied", N_("check the image pull secret and the registry permissions")),
    ("authentication required", "authentication required", N_("check the image pull secret")),
)


def _parse_time(value):
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def pull_failure(image, message):
    """(permanent, sentence) for an image-pull error message."""
    lowered = (message or "").lower()
    for needle, detail, hint in PERMANENT_PULL_DETAILS:
        if needle in lowered:
            return True, Sentence(
                N_("Image %(image)s cannot be pulled: %(detail)s — %(hint)s."),
                image=image, detail=detail, hint=Sentence(hint),
            )
    detail = (message or "").strip() or Sentence(N_("the registry did not answer"))
    return False, Sentence(
        N_("Image %(image)s cannot be pulled: %(detail)s — check the image address and that the registry is reachable."),
        image=image, detail=detail,
    )


def termination_failure(terminated, restarts):
    """The sentence for a container that ended: OOMKilled, a bus error (/dev/shm), or an exit code."""
    reason = terminated.get("reason") or ""
    code = terminated.get("exitCode")
    if reason == "OOMKilled":
        return Sentence(N_("OOMKilled — the instance ran out of memory; raise SKU count."))
    if code == SIGBUS_EXIT:
        return Sentence(N_("/dev/shm full (the process died of a bus error) — set SHM_SIZE larger."))
    return Sentence(
        N_(
            "The container keeps crashing (exit code %(code)s, %(reason)s; restarted %(restarts)s times) — check the command and the logs."
        ),
        code=code, reason=reason or Sentence(N_("no reason given")), restarts=restarts,
    )


def _event_message(events, reasons):
    matching = [e for e in events if e.get("reason") in reasons]
    matching.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    return matching[-1].get("message", "") if matching else ""


def classify_pod(pod, events=(), *, now, unschedulable_grace=120):
    """What the pod says about its instance (see the module docstring for the table)."""
    index = int(pod.get("metadata", {}).get("labels", {}).get(INDEX_LABEL, 0))
    status = pod.get("status") or {}
    image = next((c.get("image") for c in pod.get("spec", {}).get("containers", []) if c.get("name") == CONTAINER), "")
    container = next((c for c in status.get("containerStatuses") or [] if c.get("name") == CONTAINER), {})
    restarts = int(container.get("restartCount") or 0)

    def observed(state, message=""):
        return InstanceObservation(index=index, status=state, restarts=restarts, message=message)

    def failed(message):
        return observed(InstanceStatus.FAILED, message)

    if status.get("phase") == "Failed" or status.get("reason") in ("Evicted", "NodeLost"):
        detail = status.get("message") or status.get("reason") or Sentence(N_("the pod failed"))
        return failed(
            Sentence(N_("The instance was stopped by Kubernetes: %(detail)s — start the task again."), detail=detail)
        )

    state = container.get("state") or {}
    last = (container.get("lastState") or {}).get("terminated") or {}
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason") or ""
    if reason in ("ErrImagePull", "ImagePullBackOff"):
        permanent, sentence = pull_failure(image, waiting.get("message") or _event_message(events, {"Failed"}))
        if permanent or reason == "ImagePullBackOff":
            return failed(sentence)
        return observed(InstanceStatus.PENDING, sentence)
    if reason == "InvalidImageName":
        return failed(
            Sentence(
                N_("Image name %(image)s is not valid: %(detail)s — fix the image address."),
                image=image, detail=waiting.get("message") or reason,
            )
        )
    if reason in ("CreateContainerConfigError", "CreateContainerError", "RunContainerError"):
        return failed(
            Sentence(
                N_("The container cannot be created: %(detail)s — check the command, env and storages."),
                detail=waiting.get("message") or reason,
            )
        )
    terminated = state.get("terminated") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready_now = bool(container.get("ready")) and (conditions.get("Ready") or {}).get("status") == "True"
    # restartPolicy is Always: the kubelet restarts an OOMKilled container. One that is ready again served through
    # it, so an OOMKilled in lastState alone does not fail it; one that is not ready again (crash-looping on its
    # memory, or still starting after it) fails with the reason.
    if terminated.get("reason") == "OOMKilled" or (last.get("reason") == "OOMKilled" and not ready_now):
        return failed(termination_failure({"reason": "OOMKilled"}, restarts))
    if reason == "CrashLoopBackOff" or (terminated and terminated.get("exitCode") == SIGBUS_EXIT):
        return failed(termination_failure(last or terminated, restarts))

    scheduled = conditions.get("PodScheduled") or {}
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        detail = (
            scheduled.get("message") or _event_message(events, {"FailedScheduling"}) or Sentence(N_("no machine fits"))
        )
        since = _parse_time(scheduled.get("lastTransitionTime")) or _parse_time(
            pod["metadata"].get("creationTimestamp")
        )
        sentence = Sentence(
            N_("The instance cannot be scheduled on its machine: %(detail)s — free GPUs on it or check the machine."),
            detail=detail,
        )
        if since is not None and (now - since).total_seconds() >= unschedulable_grace:
            return failed(sentence)
        return observed(InstanceStatus.PENDING, sentence)

    mount_problem = _event_message(events, {"FailedMount", "FailedAttachVolume"})
    if container.get("ready") and (conditions.get("Ready") or {}).get("status") == "True":
        return observed(InstanceStatus.READY)
    if "running" in state:
        return observed(InstanceStatus.STARTING, Sentence(N_("Waiting for the readiness probe.")))
    if mount_problem:
        return observed(
            InstanceStatus.PENDING,
            Sentence(N_("A storage cannot be mounted yet: %(detail)s"), detail=re.sub(r"\s+", " ", mount_problem)[:500]),
        )
    detail = reason or status.get("phase") or "Pending"
    return observed(InstanceStatus.PENDING, Sentence(N_("Starting: %(detail)s."), detail=detail))
