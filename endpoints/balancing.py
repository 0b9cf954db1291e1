"""Which replica takes the next request: the least outstanding requests, ties taken in turn. Pure, per process.

A replica that refused or reset a connection is left out for ``eject_seconds`` (passive health: the routing
table, read from the runtime's readiness, takes it out for good when it stops being ready).
"""

import itertools
import time


class Balancer:
    def __init__(self, eject_seconds=5.0, clock=time.monotonic):
        self.outstanding = {}
        self.ejected = {}
        self.eject_seconds = eject_seconds
        self.clock = clock
        self._turn = itertools.count()

    def pick(self, upstreams, exclude=()):
        """One of ``upstreams`` (hashable addresses) not in ``exclude``, or None. Ejected ones are used only when
        nothing else is left (a pool of one that blipped is still tried)."""
        now = self.clock()
        candidates = [u for u in upstreams if u not in exclude]
        healthy = [u for u in candidates if self.ejected.get(u, 0) <= now]
        pool = healthy or candidates
        if not pool:
            return None
        least = min(self.outstanding.get(u, 0) for u in pool)
        tied = [u for u in pool if self.outstanding.get(u, 0) == least]
        return tied[next(self._turn) % len(tied)]

    def started(self, upstream):
        self.outstanding[upstream] = self.outstanding.get(upstream, 0) + 1

    def finished(self, upstream):
        left = self.outstanding.get(upstream, 0) - 1
        if left > 0:
            self.outstanding[upstream] = left
        else:
            self.outstanding.pop(upstream, None)

    def eject(self, upstream):
        self.ejected[upstream] = self.clock() + self.eject_seconds
