"""The interface both runtimes implement, and the plain data they answer with.

A runtime turns a run's placements (the ``TaskInstance`` rows of a ``TaskRun``; ``run.task`` is the
configuration) into real workloads and reports what it sees. Every workload is labelled with its run and
instance ids, so a run's teardown removes that run's workloads alone, whatever the task does next. It never changes a task's state: what it observes goes back through
``scheduler.jobs`` to the scheduler services.

Every call is idempotent: ``apply`` creates only what is absent, ``teardown`` and
``remove_workload`` treat "already gone" as success. Errors worth retrying (API 5xx,
timeouts, connection refused) raise ``TransientRuntimeError``; anything else is permanent.
"""

import abc
from dataclasses import dataclass

from deploy_portal.messages import N_, Sentence
from tasks.models import InstanceStatus
from tasks.secrets import SecretUnreadable, env_open

from .logs import archive_instance_log


class RuntimeFailure(Exception):
    """A runtime call failed for good; retrying will not help.

    Raised with a ``Sentence`` (or plain text): the task's status message reads it in each reader's language.
    """

    def __init__(self, sentence):
        super().__init__(str(sentence))
        self.sentence = sentence


class TransientRuntimeError(Exception):
    """A runtime call failed in a way that may pass (API 5xx, timeout, connection refused)."""


def task_env(task):
    """The task's env as its workloads get it, secrets opened (``tasks.secrets.env_open``):
    ``[(name, value, secret)]``. A secret no configured key opens fails the deploy, saying what to do."""
    try:
        return env_open(task.env)
    except SecretUnreadable as exc:
        raise RuntimeFailure(
            Sentence(N_("A secret environment variable can no longer be read (its key changed): edit the task "
                        "and enter it again."))
        ) from exc


@dataclass(frozen=True)
class InstanceObservation:
    """What the runtime sees of one instance.

    ``status`` is an ``InstanceStatus``; ``message`` says why an instance is not ready, as a
    ``Sentence`` (for ``failed``: the sentence and the hint the user reads). ``exists`` is False when the
    workload is gone (never created, or vanished).
    """

    index: int
    status: str
    restarts: int = 0
    message: object = ""  # a deploy_portal.messages.Sentence, or plain text
    exists: bool = True
    address: str = ""  # host:port where it answers (the gateway's upstream), when the runtime knows it

    @property
    def ready(self):
        return self.status == InstanceStatus.READY

    @property
    def failed(self):
        return self.status == InstanceStatus.FAILED


@dataclass(frozen=True)
class Workload:
    """A workload the runtime runs, as labelled by us: which task and which instance row it serves.

    ``instance_id`` is None for what serves the run as a whole (a Kubernetes Service, the run's Secret).
    """

    task_id: int
    instance_id: int | None
    handle: str
    run_id: int | None = None
    kind: str = ""  # the runtime's word for it, where it has several (Kubernetes: Pod, Service, Secret)


class Runtime(abc.ABC):
    @abc.abstractmethod
    def apply(self, run) -> None:
        """Create the workloads of the run's instances that do not exist yet; record their handles."""

    @abc.abstractmethod
    def observe(self, run, snapshot=None) -> list[InstanceObservation]:
        """The state of each of the run's instances, in index order.

        ``snapshot`` (from ``snapshot()``) lets one pass over many tasks share one read of the runtime.
        """

    def snapshot(self):
        """What ``observe`` needs about every workload, read once (None: each observe reads its own)."""
        return None

    @abc.abstractmethod
    def teardown(self, run) -> None:
        """Remove every workload of the run (and its service); absent ones are fine; other runs' are left alone."""

    @abc.abstractmethod
    def workloads(self) -> list[Workload]:
        """Every workload this runtime runs for the portal, whichever task it belongs to."""

    @abc.abstractmethod
    def remove_workload(self, workload: Workload) -> None:
        """Remove one workload found by ``workloads()`` (and the task's service when it was the last)."""

    @abc.abstractmethod
    def read_log(self, instance, tail=None) -> str:
        """The live log of an instance (its last ``tail`` lines when given); raises LookupError when gone."""

    @abc.abstractmethod
    def open_log(self, instance):
        """``(size or None, a binary stream)`` of the live log, to read in chunks; raises LookupError when gone.

        ``size``: the bytes there are now (a download ends there even while the instance keeps writing);
        None when the runtime cannot tell (the stream ends by itself).
        """

    @abc.abstractmethod
    def log_tail_bytes(self, instance, limit: int) -> bytes:
        """At most the last ``limit`` bytes of the live log; raises LookupError when gone."""

    def archive_logs(self, run) -> None:
        """Keep the last ``LOG_ARCHIVE_BYTES`` of each of the run's instance logs in ``TaskInstance.log_archive``.

        Instances already archived are left alone, so a second teardown keeps the first archive.
        """
        for instance in run.instances.filter(log_archived=False):
            archive_instance_log(self, instance)
