"""Force start: the pinned task starts now, killing the fewest (then the most recently started) tasks of its VC.

The preview says what the deed would do; both decide with ``victims.choose_victims`` on the same reads.
"""

from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext as _

from clusters.models import VirtualCluster
from deploy_portal.messages import N_, Sentence
from tasks.access import check_action
from tasks.exceptions import OperationRefused
from tasks.models import Task, TaskInstance
from tasks.services import task_transition
from tasks.states import Action

from . import dispatch, notices
from .placement import Demand
from .ports import PortBook
from .queues import borrowed
from .reasons import never_fits_sentence
from .scheduling import lock_for_decision, run_pass, write_placements
from .selectors import CLUSTER_FIELDS, cluster_states
from .victims import Holder, choose_victims



@dataclass(frozen=True)
class ForceStartPreview:
    """What a force start would do now: ``victims`` (tasks, most recently started first) are killed if ``fits``."""

    fits: bool
    victims: list
    reason: str


def _victim_choice(state, task):
    """The victims of a force start of ``task``: where the VC has quotas, only tasks on borrowed SKUs may be killed
    (``queues.borrowed``: a task within its project's guarantee never is), as for reclaim."""
    instances, started, projects = defaultdict(list), {}, {}
    rows = TaskInstance.objects.holding().filter(task__virtual_cluster_id=state.id).values_list(
        "task_id", "node_id", "sku_count", "task__started_at", "task__project_id"
    )
    for task_id, node_id, skus, started_at, project_id in rows:
        instances[task_id].append((node_id, skus))
        started[task_id], projects[task_id] = started_at, project_id
    holders = [Holder(task_id, started[task_id], tuple(held)) for task_id, held in instances.items()]
    if state.quotas:
        holders = borrowed(holders, projects, state.quotas)
    return choose_victims(machines=state.machines, holders=holders, demand=Demand(task.sku_count, task.replicas))


def _cannot_fit(task, choice, quotas):
    if choice.short and not quotas:  # its machines also hold SKUs of tasks of other VCs (a machine moved)
        return _(
            "Task “%(task)s” cannot be force-started: even with every task of its virtual cluster killed, its "
            "machines would not have room: they also hold SKUs of tasks of other virtual clusters."
        ) % {"task": task.name}
    if choice.short:
        return _(
            "Task “%(task)s” cannot be force-started: tasks within their project's guaranteed quota are never "
            "killed, and killing every task on borrowed SKUs would not make room for it."
        ) % {"task": task.name}
    return _("Task “%(task)s” cannot be force-started: even with every task of its virtual cluster killed, it %(why)s.") % {
        "task": task.name, "why": never_fits_sentence(choice.wait).render(),
    }


def _port_clash(task, victims):
    """Why ``task`` cannot take its fixed external port even once ``victims`` are killed, else None."""
    if not task.expose_port or task.external_port is None:
        return None
    holder = (
        Task.objects.holding().filter(endpoint_port=task.external_port).exclude(pk__in=list(victims))
        .values_list("name", flat=True).first()
    )
    if holder is None:
        return None
    return _(
        "Task “%(task)s” cannot be force-started: its external port %(port)s is used by “%(other)s”, "
        "which a force start does not kill; stop that task or give this one another port."
    ) % {"task": task.name, "port": task.external_port, "other": holder}


def _victim_list(ids, *, lock=False):
    rows = Task.objects.select_related("owner")
    if lock:
        rows = rows.select_for_update(of=("self",))
    found = rows.in_bulk(list(ids))
    return [found[task_id] for task_id in ids]


def task_force_start_preview(*, task, user):
    """What ``task_force_start`` would do now: whether it fits, and the tasks it would kill."""
    task = Task.objects.select_related("virtual_cluster").get(pk=task.pk)
    check_action(task=task, user=user, action=Action.FORCE_START)
    clusters = VirtualCluster.objects.filter(pk=task.virtual_cluster_id).values(*CLUSTER_FIELDS)
    state = cluster_states(clusters, with_queue=False)[task.virtual_cluster_id]
    choice = _victim_choice(state, task)
    if not choice.fits:
        return ForceStartPreview(fits=False, victims=[], reason=_cannot_fit(task, choice, state.quotas))
    clash = _port_clash(task, choice.victims)
    if clash is not None:
        return ForceStartPreview(fits=False, victims=[], reason=clash)
    victims = _victim_list(choice.victims)
    if not victims:
        reason = _("It fits now; no task has to be killed.")
    else:
        reason = _("These tasks will be killed: %(tasks)s.") % {"tasks": ", ".join(f"“{v.name}”" for v in victims)}
    return ForceStartPreview(fits=True, victims=victims, reason=reason)


def _mail_victims(victims, task, user):
    messages = []
    for victim in victims:
        if victim.owner.email:
            subject = _("Your task “%(task)s” was killed") % {"task": victim.name}
            body = _(
                "Your task “%(task)s” on %(vc)s was killed to make room for “%(forced)s”, force-started by %(manager)s.\n"
                "Start it again when you are ready; it will queue until GPUs are free."
            ) % {"task": victim.name, "vc": task.virtual_cluster.name, "forced": task.name, "manager": user.get_username()}
            messages.append((subject, body, None, [victim.owner.email]))

    notices.send_after_commit(messages, f"the tasks killed for task {task.pk}")


class VictimsChanged(OperationRefused):
    """The victims a force start would kill now are not the ones the manager was shown: nothing is killed."""

    def __init__(self, task, victims):
        self.task, self.victims = task, victims
        super().__init__(
            _("The tasks a force start of “%(task)s” would kill have changed since the preview; nothing was "
              "killed. It would now kill: %(tasks)s.")
            % {"task": task.name, "tasks": ", ".join(f"“{v.name}”" for v in victims) or "—"}
        )


def task_force_start(*, task, user, expected_victims=None):
    """Start the pinned ``task`` now, killing the fewest (then the most recently started) tasks of its VC; where
    the VC has quotas, only tasks on borrowed SKUs (never one within its project's guarantee).

    Refused, with nothing killed, when it could not fit even on the empty VC, or when ``expected_victims``
    (the task ids of the preview the manager confirmed) differ from the victims chosen now (``VictimsChanged``
    carries the new list). Each victim becomes ``killed`` with an event naming ``task`` and ``user``, and its
    owner is mailed after commit.
    """
    with transaction.atomic():
        clusters, task = lock_for_decision(task)
        check_action(task=task, user=user, action=Action.FORCE_START)
        state = cluster_states(clusters)[task.virtual_cluster_id]
        choice = _victim_choice(state, task)
        if not choice.fits:
            raise OperationRefused(_cannot_fit(task, choice, state.quotas))
        ports = PortBook(locked=True).lock()  # before the check: no other decision hands out a port until this one commits
        clash = _port_clash(task, choice.victims)
        if clash is not None:
            raise OperationRefused(clash)
        if expected_victims is not None and set(expected_victims) != set(choice.victims):
            raise VictimsChanged(task, _victim_list(choice.victims))
        victims = _victim_list(choice.victims, lock=True)
        why = Sentence(
            N_("Killed to make room for “%(task)s”, force-started by %(manager)s."),
            task=task.name, manager=user.get_username(),
        )
        for victim in victims:
            ports.release(victim.endpoint_port)
            task_transition(
                task=victim, transition="kill", actor=user, operation="kill", message=why,
                endpoint_port=None, status_message=why, killed_for=task,
            )
            dispatch.teardown_after_commit(victim.pk, victim.current_run_id)
        _mail_victims(victims, task, user)
        message = Sentence(N_("Force-started; killed: %(tasks)s."), tasks=", ".join(v.name for v in victims) or "—")
        write_placements(
            {task.pk: (state, list(choice.placement))}, ports, {task.pk: ("place", user, Action.FORCE_START, message)}
        )
        # A victim may have freed more than the forced task needed; without victims, the forced task was a
        # pinned one held back by its project's borrowing limit, and the queue behind it moves on.
        run_pass(clusters, ports)
    task.refresh_from_db()
    return task


