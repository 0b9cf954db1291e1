"""The Kubernetes runtime, through the official client.

Promises:
- ``apply`` creates, per instance, a pod bound to its machine (``manifests.make_pod``), when the
  task exposes its port a NodePort Service on ``endpoint_port``, and when it has secret env vars the
  run's immutable Secret, which the pods read through ``secretKeyRef`` (never as plain pod env). Creation is idempotent: a
  pod or service that already exists for this very instance row is kept; a stale one (of an
  earlier run of the task) is deleted and created again on a later try.
- ``observe`` reads the task's pods and, for those not ready, their events, through the failure
  table (``failures.classify_pod``).
- ``teardown`` deletes the run's pods, Secret and service; 404 is success.
- Transient API errors (429, 5xx, timeouts, refused connections) are retried with exponential
  back-off; if they persist, ``TransientRuntimeError`` lets the Celery task retry later. A 4xx
  other than 404/409 is permanent (``RuntimeFailure``).
- Configuration comes from the in-cluster service account, else ``KUBECONFIG`` / ``~/.kube/config``.
"""

import dataclasses
import io
import json
import logging

import urllib3
from django.conf import settings
from django.utils import timezone
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from deploy_portal.messages import N_, Sentence
from tasks.models import InstanceStatus, TaskInstance

from ..base import InstanceObservation, Runtime, RuntimeFailure, TransientRuntimeError, Workload, task_env
from .failures import classify_pod
from .manifests import (
    CONTAINER,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGER,
    RUN_LABEL,
    SELECTOR,
    TASK_LABEL,
    InstanceSpec,
    MountSpec,
    SecretSpec,
    ServiceSpec,
    env_secret_name,
    make_env_secret,
    make_pod,
    make_service,
    pod_name,
    service_name,
    task_selector,
)

logger = logging.getLogger(__name__)
TRANSIENT_STATUSES = {0, 408, 429, 500, 502, 503, 504}
ARCHIVE_TAIL_LINES = 100_000


def load_api_client():
    """An ApiClient from the in-cluster service account, else from KUBECONFIG / ~/.kube/config."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def instance_spec(task, instance, *, mounts, env=None, image_pull_secrets=()):
    """The plain data ``make_pod`` needs for one instance of ``task``; ``env`` is ``task_env(task)`` (opened once
    per apply): the secrets' values stay out of the pod, which reads them from the run's Secret."""
    vc = task.virtual_cluster
    env = task_env(task) if env is None else env
    return InstanceSpec(
        task_id=task.pk,
        run_id=instance.run_id,
        instance_id=instance.pk,
        index=instance.index,
        node_name=instance.node_name,
        image=task.image,
        gpus=instance.gpu_count,
        cpus=instance.sku_count * vc.sku_cpus,
        memory_gib=instance.sku_count * vc.sku_memory_gib,
        env=tuple((name, None if secret else value) for name, value, secret in env),
        env_secret=env_secret_name(instance.run_id) if any(secret for _name, _value, secret in env) else "",
        command=tuple(str(part) for part in task.command),
        args=tuple(str(part) for part in task.args),
        container_port=task.container_port,
        shm_size=task.shm_size,
        mounts=mounts,
        image_pull_secrets=tuple(image_pull_secrets),
        run_as_non_root=vc.run_as_non_root,
    )


def task_mounts(task):
    return tuple(
        MountSpec(
            name=f"storage-{i}",
            kind=m.storage.kind,
            source=m.storage.source,
            mount_path=m.mount_path,
            read_only=m.storage.read_only,
        )
        for i, m in enumerate(task.mounts.select_related("storage"))
    )


def _labels(obj):
    return (obj.get("metadata") or {}).get("labels") or {}


def _ours(obj, task_id=None):
    labels = _labels(obj)
    return labels.get(MANAGED_BY) == MANAGER and (task_id is None or labels.get(TASK_LABEL) == str(task_id))


def _api_reason(exc):
    """What the API server said (its Status ``message``: "exceeded quota: …"), else the HTTP reason."""
    try:
        message = json.loads(exc.body or "").get("message")
    except (ValueError, AttributeError):
        message = None
    return message or exc.reason


class KubernetesRuntime(Runtime):

    def __init__(
        self,
        api_client=None,
        *,
        namespace=None,
        image_pull_secrets=None,
        request_timeout=10.0,
        unschedulable_grace=120,
    ):
        self._api_client = api_client
        self.namespace = namespace or settings.KUBERNETES_NAMESPACE
        self.image_pull_secrets = (
            settings.KUBERNETES_IMAGE_PULL_SECRETS if image_pull_secrets is None else image_pull_secrets
        )
        self.request_timeout = request_timeout
        self.unschedulable_grace = unschedulable_grace

    @property
    def api_client(self):
        if self._api_client is None:
            self._api_client = load_api_client()
        return self._api_client

    @property
    def core(self):
        return client.CoreV1Api(self.api_client)

    def _json(self, obj):
        return self.api_client.sanitize_for_serialization(obj)

    def _call(self, method, *args, **kwargs):
        """Call the API once, within the request timeout. A transient error (5xx, 429, a timeout, a refused or
        dropped connection) is a ``TransientRuntimeError``: the Celery task retries it, backing off; the worker
        never sleeps here, so an API outage cannot fill the pool and starve the stops."""
        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            if exc.status not in TRANSIENT_STATUSES:
                raise
            error = exc
        except urllib3.exceptions.HTTPError as exc:  # timeouts, refused or dropped connections
            error = exc
        logger.warning("Kubernetes API %s failed: %s", method.__name__, error)
        raise TransientRuntimeError(str(error)) from error

    def _create(self, create, body):
        """Create ``body``; answer the existing object's JSON on 409, None when created."""
        try:
            self._call(create, self.namespace, body)
            return None
        except ApiException as exc:
            if exc.status == 422 and "already allocated" in (exc.body or ""):
                # The node port is still held by a service being deleted (the previous holder's teardown).
                raise TransientRuntimeError(f"node port of {body['metadata']['name']} is still allocated") from exc
            if exc.status != 409:
                raise RuntimeFailure(
                    Sentence(
                        N_("Kubernetes refused %(kind)s %(name)s: %(reason)s"),
                        kind=body["kind"], name=body["metadata"]["name"], reason=_api_reason(exc),
                    )
                ) from exc
        read = {
            "Pod": self.core.read_namespaced_pod,
            "Service": self.core.read_namespaced_service,
            "Secret": self.core.read_namespaced_secret,
        }[body["kind"]]
        try:
            return self._json(self._call(read, body["metadata"]["name"], self.namespace))
        except ApiException as exc:
            if exc.status == 404:  # deleted in between: the next try creates it
                raise TransientRuntimeError(f"{body['metadata']['name']} vanished while being created") from exc
            raise

    def _delete(self, delete, name):
        try:
            self._call(delete, name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- apply -------------------------------------------------------------------------
    def apply(self, run):
        task = run.task
        # The Service first: its node port may still be held by a service being deleted (a transient
        # refusal); with no pod created yet the task stays unapplied and the retry, or reconcile, applies it
        # whole. Pods first could make it ready, then running, with no way in.
        if task.expose_port and task.endpoint_port and task.container_port:
            body = make_service(
                ServiceSpec(
                    task_id=task.pk, run_id=run.pk, container_port=task.container_port, node_port=task.endpoint_port
                ),
                namespace=self.namespace,
            )
            existing = self._create(self.core.create_namespaced_service, body)
            ports = ((existing or {}).get("spec") or {}).get("ports") or []
            stale = existing is not None and (
                [p.get("nodePort") for p in ports] != [task.endpoint_port] or _labels(existing).get(RUN_LABEL) != str(run.pk)
            )
            if stale:  # an earlier run's, or its port changed: remove it, a retry creates ours
                self._delete(self.core.delete_namespaced_service, body["metadata"]["name"])
                raise TransientRuntimeError(f"stale service {body['metadata']['name']} is being replaced")
        env = task_env(task)
        secrets = tuple((name, value) for name, value, secret in env if secret)
        if secrets:
            # Before the pods, which read it. Per run and immutable: one that exists already is this run's.
            body = make_env_secret(SecretSpec(task_id=task.pk, run_id=run.pk, data=secrets), namespace=self.namespace)
            self._create(self.core.create_namespaced_secret, body)
        mounts = task_mounts(task)
        for instance in run.instances.order_by("index"):
            body = make_pod(
                instance_spec(task, instance, mounts=mounts, env=env, image_pull_secrets=self.image_pull_secrets),
                namespace=self.namespace,
            )
            existing = self._create(self.core.create_namespaced_pod, body)
            if existing is not None and _labels(existing).get(INSTANCE_LABEL) != str(instance.pk):
                # A pod of an earlier run still holds the name: remove it; a retry creates ours.
                self._delete(self.core.delete_namespaced_pod, body["metadata"]["name"])
                raise TransientRuntimeError(f"stale pod {body['metadata']['name']} is being replaced")
            if instance.handle != body["metadata"]["name"]:
                TaskInstance.objects.filter(pk=instance.pk).update(handle=body["metadata"]["name"])
                instance.handle = body["metadata"]["name"]

    # -- observe -----------------------------------------------------------------------
    def _pods(self, selector, task_id=None):
        pods = self._call(self.core.list_namespaced_pod, self.namespace, label_selector=selector)
        # Filtered here too: the selector is the server's promise, this is ours.
        return [pod for pod in (self._json(p) for p in pods.items) if _ours(pod, task_id)]

    def _events(self, name):
        events = self._call(
            self.core.list_namespaced_event, self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return [e for e in (self._json(e) for e in events.items) if (e.get("involvedObject") or {}).get("name") == name]

    def snapshot(self):
        """Every pod of the portal, grouped by task id: one list call for a whole reconcile pass."""
        grouped = {}
        for pod in self._pods(SELECTOR):
            grouped.setdefault(_labels(pod).get(TASK_LABEL), []).append(pod)
        return grouped

    def _live_pods(self, listed):
        return {
            _labels(pod).get(INSTANCE_LABEL): pod
            for pod in listed
            if not (pod.get("metadata") or {}).get("deletionTimestamp")
        }

    def observe(self, run, snapshot=None):
        task = run.task
        instances = sorted(run.instances.all(), key=lambda instance: instance.index)  # prefetched by the caller
        wanted = {str(instance.pk) for instance in instances}
        pods = self._live_pods(snapshot.get(str(task.pk), [])) if snapshot is not None else {}
        if not wanted <= pods.keys():
            # Not in the snapshot (or none given): read the task's pods now. A pod created after the
            # snapshot was taken must not read as vanished.
            pods = self._live_pods(self._pods(task_selector(task.pk), task.pk))
        now = timezone.now()
        observations = []
        for instance in instances:
            pod = pods.get(str(instance.pk))
            if pod is None:
                observations.append(
                    InstanceObservation(
                        index=instance.index,
                        status=InstanceStatus.PENDING,
                        exists=False,
                        message=Sentence(N_("The pod does not exist.")),
                    )
                )
                continue
            observation = classify_pod(pod, (), now=now, unschedulable_grace=self.unschedulable_grace)
            if not observation.ready:  # events tell why (pull errors, scheduling, mounts)
                events = self._events(pod["metadata"]["name"])
                observation = classify_pod(pod, events, now=now, unschedulable_grace=self.unschedulable_grace)
            pod_ip = (pod.get("status") or {}).get("podIP")
            if observation.ready and pod_ip and task.container_port:
                # The gateway reaches the pod itself (its IP and container port), not the NodePort: it balances
                # over the run's ready pods on its own, and a NetworkPolicy can then admit the gateway alone.
                host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
                observation = dataclasses.replace(observation, address=f"{host}:{task.container_port}")
            observations.append(observation)
        return observations

    # -- teardown ----------------------------------------------------------------------
    def teardown(self, run):
        """Remove the run's pods, Secret and Service, told by their labels: pod and Service names repeat across
        runs of a task, and a run started anew meanwhile keeps its own."""
        ours = {str(pk) for pk in run.instances.values_list("pk", flat=True)}
        for pod in self._pods(task_selector(run.task_id), run.task_id):
            labels = _labels(pod)
            if labels.get(INSTANCE_LABEL) in ours or labels.get(RUN_LABEL) == str(run.pk):
                self._delete(self.core.delete_namespaced_pod, pod["metadata"]["name"])
        self._delete(self.core.delete_namespaced_secret, env_secret_name(run.pk))  # its name is the run's own
        try:
            service = self._json(self._call(self.core.read_namespaced_service, service_name(run.task_id), self.namespace))
        except ApiException as exc:
            if exc.status != 404:
                raise
            return
        if _labels(service).get(RUN_LABEL) == str(run.pk):
            self._delete(self.core.delete_namespaced_service, service_name(run.task_id))

    def workloads(self):
        found = []
        for pod in self._pods(SELECTOR):
            labels = _labels(pod)
            found.append(
                Workload(
                    task_id=int(labels[TASK_LABEL]),
                    instance_id=int(labels[INSTANCE_LABEL]),
                    handle=pod["metadata"]["name"],
                    run_id=_run_id(labels),
                )
            )
        for kind, listing in (
            ("Service", self.core.list_namespaced_service), ("Secret", self.core.list_namespaced_secret),
        ):
            for obj in (self._json(o) for o in self._call(listing, self.namespace, label_selector=SELECTOR).items):
                if _ours(obj):
                    found.append(
                        Workload(
                            task_id=int(_labels(obj)[TASK_LABEL]), instance_id=None, handle=obj["metadata"]["name"],
                            run_id=_run_id(_labels(obj)), kind=kind,
                        )
                    )
        return found

    def remove_workload(self, workload):
        if workload.kind == "Secret":
            self._delete(self.core.delete_namespaced_secret, workload.handle)
        elif workload.instance_id is None:
            self._delete(self.core.delete_namespaced_service, workload.handle)
        else:
            self._delete(self.core.delete_namespaced_pod, workload.handle)

    def nodes(self):
        """Every node of the cluster, as API JSON (for ``import_nodes``)."""
        return [self._json(node) for node in self._call(self.core.list_node).items]

    # -- logs --------------------------------------------------------------------------
    def _log(self, instance, **kwargs):
        name = instance.handle or pod_name(instance.task_id, instance.index)
        try:
            return self._call(self.core.read_namespaced_pod_log, name, self.namespace, container=CONTAINER, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise LookupError(name) from exc
            if exc.status == 400:  # the container has not started yet: no log so far
                return ""
            raise

    def read_log(self, instance, tail=None):
        return self._log(instance, tail_lines=tail) if tail is not None else self._log(instance)

    def open_log(self, instance):
        response = self._log(instance, _preload_content=False)
        if isinstance(response, str):  # the container has not started yet
            return None, io.BytesIO(response.encode())
        return None, _ReleasingStream(response)

    def log_tail_bytes(self, instance, limit):
        return self._log(instance, tail_lines=ARCHIVE_TAIL_LINES).encode()[-limit:]


class _ReleasingStream:
    """A urllib3 response read in chunks, its connection given back to the pool once read."""

    def __init__(self, response):
        self.response = response

    def read(self, size):
        return self.response.read(size)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.response.release_conn()


def _run_id(labels):
    value = labels.get(RUN_LABEL)
    return int(value) if value and value.isdigit() else None
