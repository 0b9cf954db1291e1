"""Why a task waits, in words: the sentences of the queue's reasons and of "can never fit".

The numbers come from ``placement.Wait``; the words are ``Sentence``s, said in each reader's language.
"""

from deploy_portal.messages import CLAUSES, N_, NP_, Sentence, joined

from .placement import WaitCode


def _ahead(count):
    return Sentence(NP_("%(count)s task ahead", "%(count)s tasks ahead"), number="count", count=count)


def _needs(wait):
    if wait.replicas == 1:
        return Sentence(
            NP_("needs %(sku)s SKU on one machine", "needs %(sku)s SKUs on one machine"), number="sku", sku=wait.sku_count
        )
    return Sentence(
        N_("needs %(replicas)s instances of %(sku)s SKUs, each on one machine"), replicas=wait.replicas, sku=wait.sku_count
    )


def never_fits_sentence(wait):
    """Why a task could never fit, as a Sentence: "needs 9 SKUs on one machine, but the largest machine offers 8"."""
    if wait.largest_capacity == 0:
        return Sentence(N_("needs %(sku)s SKUs on one machine, but the virtual cluster has no machines"), sku=wait.sku_count)
    if wait.sku_count > wait.largest_capacity:
        return Sentence(
            N_("needs %(sku)s SKUs on one machine, but the largest machine offers %(largest)s"),
            sku=wait.sku_count, largest=wait.largest_capacity,
        )
    return Sentence(
        N_("%(needs)s, but even empty the machines could host only %(count)s"),
        needs=_needs(wait), count=wait.ever_fitting_instances,
    )


def wait_sentence(wait):
    """The reason as a Sentence, e.g. "needs 4 SKUs on one machine; largest free block is 2 on node-07; 3 tasks ahead"."""
    if wait.code == WaitCode.NEVER_FITS:
        return Sentence(N_("can never fit: %(why)s"), why=never_fits_sentence(wait))
    # A blocker of None is a task of another project, whose name this reader is not told.
    if wait.code == WaitCode.BEHIND_PINNED and wait.blocker is None:
        parts = [Sentence(N_("waits behind the pinned task, a task of another project"))]
    elif wait.code == WaitCode.BEHIND_PINNED:
        parts = [Sentence(N_("waits behind the pinned task “%(task)s”"), task=wait.blocker)]
    elif wait.code == WaitCode.BEHIND_HEAD and wait.blocker is None:
        parts = [Sentence(N_("strict FIFO: waits behind a task of another project at the head of the queue"))]
    elif wait.code == WaitCode.BEHIND_HEAD:
        parts = [Sentence(N_("strict FIFO: waits behind “%(task)s” at the head of the queue"), task=wait.blocker)]
    elif wait.code == WaitCode.BEHIND_PROJECT:
        parts = [Sentence(N_("waits behind “%(task)s”, the first task of its project in the queue"), task=wait.blocker)]
    elif wait.code == WaitCode.QUOTA:
        parts = [
            Sentence(
                N_("project %(project)s has used %(used)s/%(guaranteed)s SKUs (guaranteed quota), may borrow %(borrow)s"),
                project=wait.project, used=wait.used, guaranteed=wait.guaranteed, borrow=wait.borrowable,
            ),
            _needs(wait),
        ]
    elif wait.code == WaitCode.PORT_IN_USE:
        parts = [Sentence(N_("external port %(port)s is in use by another task"), port=wait.port)]
    elif wait.code == WaitCode.PLACEABLE:
        parts = [Sentence(N_("GPUs are free; starting shortly"))]
    elif wait.code == WaitCode.FRAGMENTED:
        if wait.largest_machine is None:
            largest = Sentence(N_("no machine has a free SKU"))
        else:
            largest = Sentence(
                N_("largest free block is %(size)s on %(machine)s"), size=wait.largest_free, machine=wait.largest_machine
            )
        parts = [_needs(wait), largest]
        if wait.replicas > 1:
            parts.append(Sentence(N_("free blocks fit %(count)s"), count=wait.fitting_instances))
    else:
        parts = [
            Sentence(
                N_("needs %(needed)s SKUs in total; %(free)s free"),
                needed=wait.sku_count * wait.replicas, free=wait.free_total,
            )
        ]
    if wait.unschedulable:
        parts.append(Sentence(
            N_("fits only once the unschedulable machines %(machines)s take tasks again"),
            machines=", ".join(wait.unschedulable),
        ))
    return joined(*parts, _ahead(wait.ahead), sep=CLAUSES)


def wait_text(wait):
    """The reason in words of the active language."""
    return wait_sentence(wait).render()
