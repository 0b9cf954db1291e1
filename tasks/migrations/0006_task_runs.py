"""Every start is a run: ``TaskRun`` with its own instances and logs; a machine may be deleted once free.

The instances there are become run 1 of their task (current if the task holds GPUs); a queued task gets a
run of its own for the start it is waiting on.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import deploy_portal.messages

HOLDING = ("deploying", "running")
OUTCOMES = {"stopped": "stopped", "failed": "failed", "killed": "killed"}


def give_runs(apps, schema_editor):
    Task = apps.get_model("tasks", "Task")
    TaskRun = apps.get_model("tasks", "TaskRun")
    TaskInstance = apps.get_model("tasks", "TaskInstance")
    for task in Task.objects.iterator(chunk_size=500):
        number = 0
        current = None
        if TaskInstance.objects.filter(task_id=task.pk).exists():
            number += 1
            holding = task.status in HOLDING
            run = TaskRun.objects.create(
                task_id=task.pk, number=number, started_by_id=task.owner_id, placed_at=task.started_at,
                endpoint_port=task.endpoint_port, torn_down_at=None if holding else task.updated_at,
                ended_at=None if holding else task.updated_at, outcome="" if holding else OUTCOMES.get(task.status, "stopped"),
                reason=task.status_message if not holding else "",
            )
            TaskInstance.objects.filter(task_id=task.pk).update(run_id=run.pk)
            current = run
        if task.status == "queued":
            number += 1
            current = TaskRun.objects.create(
                task_id=task.pk, number=number, started_by_id=task.owner_id, queued_at=task.queued_at,
            )
        if current is not None:
            Task.objects.filter(pk=task.pk).update(current_run_id=current.pk)


class Migration(migrations.Migration):

    dependencies = [
        ("clusters", "0001_initial"),
        ("tasks", "0005_messages_in_the_readers_language"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="TaskRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveIntegerField(verbose_name="number")),
                ("queued_at", models.DateTimeField(blank=True, null=True, verbose_name="queued at")),
                ("placed_at", models.DateTimeField(blank=True, null=True, verbose_name="placed at")),
                ("running_at", models.DateTimeField(blank=True, null=True, verbose_name="running at")),
                ("ended_at", models.DateTimeField(blank=True, null=True, verbose_name="ended at")),
                (
                    "outcome",
                    models.CharField(
                        blank=True,
                        choices=[("stopped", "Stopped"), ("failed", "Failed"), ("killed", "Killed")],
                        max_length=20,
                        verbose_name="outcome",
                    ),
                ),
                ("reason", deploy_portal.messages.SentenceField(blank=True, default=str, verbose_name="reason")),
                ("config", models.JSONField(blank=True, default=dict, verbose_name="configuration")),
                ("archive_error", models.TextField(blank=True, verbose_name="log archive error")),
                ("endpoint_port", models.PositiveIntegerField(blank=True, null=True, verbose_name="endpoint port")),
                ("torn_down_at", models.DateTimeField(blank=True, null=True, verbose_name="torn down at")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                (
                    "killed_by",
                    models.ForeignKey(
                        blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                        to=settings.AUTH_USER_MODEL, verbose_name="killed by",
                    ),
                ),
                (
                    "killed_for",
                    models.ForeignKey(
                        blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                        to="tasks.task", verbose_name="killed for",
                    ),
                ),
                (
                    "started_by",
                    models.ForeignKey(
                        blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                        to=settings.AUTH_USER_MODEL, verbose_name="started by",
                    ),
                ),
                (
                    "task",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="runs", to="tasks.task"
                    ),
                ),
            ],
            options={
                "verbose_name": "run",
                "verbose_name_plural": "runs",
                "ordering": ["-number"],
                "constraints": [models.UniqueConstraint(fields=("task", "number"), name="unique_run_number")],
            },
        ),
        migrations.AddField(
            model_name="task",
            name="current_run",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                to="tasks.taskrun", verbose_name="current run",
            ),
        ),
        migrations.AddField(
            model_name="taskinstance",
            name="run",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="instances",
                to="tasks.taskrun", verbose_name="run",
            ),
        ),
        migrations.AddField(
            model_name="taskinstance",
            name="port",
            field=models.PositiveIntegerField(blank=True, null=True, verbose_name="port"),
        ),
        migrations.RunPython(give_runs, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="taskinstance",
            name="run",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="instances", to="tasks.taskrun",
                verbose_name="run",
            ),
        ),
        migrations.RemoveConstraint(model_name="taskinstance", name="unique_instance_index"),
        migrations.AddConstraint(
            model_name="taskinstance",
            constraint=models.UniqueConstraint(fields=("run", "index"), name="unique_instance_index_per_run"),
        ),
        migrations.AlterField(
            model_name="taskinstance",
            name="node",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="instances",
                to="clusters.node", verbose_name="machine",
            ),
        ),
        migrations.AlterModelOptions(
            name="taskinstance",
            options={"ordering": ["task", "-run", "index"], "verbose_name": "instance", "verbose_name_plural": "instances"},
        ),
    ]
