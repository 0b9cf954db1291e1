"""``manage.py stop_deployments``: stop every task that holds GPUs, as its stop button does, and remove its
workloads now rather than leaving that to a worker (``./scripts/run-portal --stop-deployments`` runs it).

Each task gets the stop event with this command as the reason; its processes or pods are torn down here.
"""

from django.core.management.base import BaseCommand

from deploy_portal.messages import N_, Sentence
from scheduler import jobs
from scheduler.services import task_stop
from tasks.models import Task


class Command(BaseCommand):
    help = "Stop every deploying, running or failed task and remove its workloads now."

    def handle(self, *args, **options):
        message = Sentence(N_("Stopped by the manage.py stop_deployments command."))
        stopped = 0
        for task in Task.objects.holding().order_by("pk"):
            run_id = task.current_run_id
            task_stop(task=task, message=message)
            jobs.teardown(task.pk, run_id)
            self.stdout.write(f"stopped task {task.pk} ({task.name})")
            stopped += 1
        if not stopped:
            self.stdout.write("no task held GPUs")
