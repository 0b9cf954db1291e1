"""Endpoint ports: the port book every decision reads and writes them through.

Node ports are shared by every VC, so a decision that may hand one out opens a ``PortBook(locked=True)``:
its first read takes a PostgreSQL advisory lock held to the end of the transaction, then reads the
ports held by tasks holding GPUs, once. The queue views read a ``PortBook(locked=False)``. Within one pass, a fixed port that
one VC's plan gives out is ``planned``: the plans of the VCs after it see it as taken (two queued tasks
of different VCs may ask for the same port) until it is reserved.
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks.exceptions import OperationRefused
from tasks.models import Task, TaskInstance, TaskRun
from tasks.validation import port_in_use_message

# pg_advisory_xact_lock key serialising the choice of endpoint ports.
PORT_LOCK_KEY = 0x6470_7274
# A run whose teardown never finished keeps its port this long after its end (reconcile removes its workloads).
UNFINISHED_TEARDOWN = timedelta(hours=1)


def held_ports():
    """The ports taken now (in any VC: node ports are cluster-wide): the endpoint ports of tasks holding GPUs,
    and the ports their instances listen on when the runtime picked one (the local runtime's instances 1…)."""
    # No ORDER BY in either: SQLite refuses one in the parts of a UNION (the embedded default runs on SQLite).
    endpoints = Task.objects.holding().exclude(endpoint_port=None).order_by().values_list("endpoint_port", flat=True)
    instances = TaskInstance.objects.holding().exclude(port=None).order_by().values_list("port", flat=True)
    return set(endpoints.union(instances))  # one query


def quarantined_ports():
    """Endpoint ports of runs that ended, never picked for another task until their teardown finished and
    ``PORT_QUARANTINE_SECONDS`` passed (a teardown that never came: an hour after the end), so an old URL never
    silently reaches another model. A fixed port a user asks for again is theirs to choose."""
    now = timezone.now()
    grace = timedelta(seconds=settings.PORT_QUARANTINE_SECONDS)
    return set(
        TaskRun.objects.filter(ended_at__isnull=False)
        .filter(Q(torn_down_at__gt=now - grace) | Q(torn_down_at__isnull=True, ended_at__gt=now - UNFINISHED_TEARDOWN))
        .exclude(endpoint_port=None).values_list("endpoint_port", flat=True)
    )


def planned_ports(queue, plan):
    """The fixed external ports of the queued tasks ``plan`` starts."""
    return {t.external_port for t in queue if t.id in plan.placements and t.external_port is not None}


class PortBook:
    def __init__(self, *, locked):
        self.locked = locked
        self._held = None
        self._quarantined = None
        self._planned = set()

    @property
    def held(self):
        """The held ports, read once (after taking the port lock, for a locked book)."""
        if self._held is None:
            if self.locked and connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PORT_LOCK_KEY])
            self._held = held_ports()
        return self._held

    def lock(self):
        """Take the port lock now: no other decision hands out a port until this transaction ends."""
        if not self.locked:
            raise RuntimeError("only a locked PortBook hands out ports")
        self.held  # noqa: B018 (reading takes the lock)
        return self

    def for_queue(self, queue):
        """The ports a queue's plan must avoid. They are read only when a queued task asks for a fixed one."""
        if not any(task.external_port is not None for task in queue):
            return frozenset()
        return self.held | self._planned

    def plan(self, queue, plan):
        """Remember the fixed ports ``plan`` gives out, for the plans after it."""
        self._planned.update(planned_ports(queue, plan))

    def refuse_if_held(self, wanted):
        if wanted is not None and wanted in self.held:
            raise OperationRefused(port_in_use_message(wanted))

    def release(self, port):
        """A port freed in this transaction (a killed task's): others may take it now."""
        self.held.discard(port)

    def reserve(self, wanted):
        """Claim ``wanted`` (a fixed external port) or the lowest free one of ``NODEPORT_RANGE``."""
        self.lock()
        self.refuse_if_held(wanted)
        if wanted is not None:
            self.held.add(wanted)
            return wanted
        low, high = settings.NODEPORT_RANGE
        if self._quarantined is None:
            self._quarantined = quarantined_ports()
        port = next((p for p in range(low, high + 1) if p not in self.held and p not in self._quarantined), None)
        if port is None:
            raise OperationRefused(_("No free port is left in %(low)s–%(high)s.") % {"low": low, "high": high})
        self.held.add(port)
        return port
