"""Endpoint ports: the port book every decision reads and writes them through.

Node ports are shared by every VC, so a decision that may hand one out opens a ``PortBook(locked=True)``:
its first read takes a PostgreSQL advisory lock held to the end of the transaction, then reads the
ports held by tasks holding GPUs, once. The queue views read a ``PortBook(locked=False)``. Within one pass, a fixed port that
one VC's plan gives out is ``planned``: the plans of the VCs after it see it as taken (two queued tasks
of different VCs may ask for the same port) until it is reserved.
"""

from django.conf import settings
from django.db import connection
from django.utils.translation import gettext as _

from tasks.exceptions import OperationRefused
from tasks.models import Task
from tasks.validation import port_in_use_message

# pg_advisory_xact_lock key serialising the choice of endpoint ports.
PORT_LOCK_KEY = 0x6470_7274


def held_ports():
    """The endpoint ports taken by tasks holding GPUs (in any VC: node ports are cluster-wide)."""
    return set(Task.objects.holding().exclude(endpoint_port=None).values_list("endpoint_port", flat=True))


def planned_ports(queue, plan):
    """The fixed external ports of the queued tasks ``plan`` starts."""
    return {t.external_port for t in queue if t.id in plan.placements and t.external_port is not None}


class PortBook:
    def __init__(self, *, locked):
        self.locked = locked
        self._held = None
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
        assert self.locked, "only a locked book hands out ports"
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
        port = next((p for p in range(low, high + 1) if p not in self.held), None)
        if port is None:
            raise OperationRefused(_("No free port is left in %(low)s–%(high)s.") % {"low": low, "high": high})
        self.held.add(port)
        return port
