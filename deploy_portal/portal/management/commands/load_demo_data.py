"""Demo data for the embedded default: a user and a manager with known passwords, a project,
a virtual cluster on this machine, a storage and a task ready to start. Safe to run twice."""

import socket

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from clusters.models import Node, Project, QueuePolicy, Storage, StorageKind, VirtualCluster
from scheduler.runtimes.local.gpus import LocalGpu, local_gpus
from tasks.models import Task
from tasks.permissions import ensure_managers_group
from tasks.services import task_create

DEMO_USERS = {
    # username: (password, is manager)
    "demo": ("demo-pass-123", False),
    "manager": ("manager-pass-123", True),
}


class Command(BaseCommand):
    help = "Load demo data (idempotent): users demo / manager, a project, a local VC, a storage, a demo task."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        users = {}
        for username, (password, is_manager) in DEMO_USERS.items():
            user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
            if created:
                user.set_password(password)
            user.is_staff = is_manager
            user.save()
            if is_manager:
                user.groups.add(ensure_managers_group())
            users[username] = user

        project, _ = Project.objects.get_or_create(name="demo-project", defaults={"description": "Demo R&D project"})
        project.members.add(users["demo"], users["manager"])

        # This machine's GPUs as nvidia-smi lists them (LOCAL_GPU_COUNT anonymous ones without it): the local
        # runtime hands their indices out in CUDA_VISIBLE_DEVICES, so the machine must not claim more.
        gpus = local_gpus() or [LocalGpu(index=i) for i in range(settings.LOCAL_GPU_COUNT)]
        gpu_type = gpus[0].name or "demo-gpu"
        vc, _ = VirtualCluster.objects.get_or_create(
            name="local",
            defaults={
                "gpu_type": gpu_type, "sku_gpus": 1, "sku_cpus": 2, "sku_memory_gib": 4,
                "queue_policy": QueuePolicy.BEST_EFFORT_FIFO, "endpoint_host": "127.0.0.1",
            },
        )
        vc.users.add(users["demo"], users["manager"])
        Node.objects.get_or_create(
            name=socket.gethostname() or "localhost",
            defaults={"virtual_cluster": vc, "gpu_type": gpu_type, "sku_capacity": len(gpus)},
        )

        scratch = settings.VAR_DIR / "demo-storage"
        scratch.mkdir(parents=True, exist_ok=True)
        storage, _ = Storage.objects.get_or_create(
            name="demo-models", defaults={"kind": StorageKind.HOST_PATH, "source": str(scratch), "read_only": True}
        )
        storage.projects.add(project)

        if not Task.objects.filter(project=project).exists():
            for name, sku_count in (("demo-llm", 1), ("demo-llm-large", 2)):
                task_create(
                    user=users["demo"],
                    data={
                        "name": name, "project": project, "task_type": "inference",
                        "image": "registry.example.com/demo/demo-llm:1.0", "virtual_cluster": vc,
                        "sku_count": min(sku_count, len(gpus)), "replicas": 1, "expose_port": True, "container_port": 8000,
                        "external_port": None, "description": "The built-in demo model server (OpenAI-compatible).",
                        "env": [{"name": "SHM_SIZE", "value": "1Gi"}],
                        "mounts": [{"storage": storage, "mount_path": "/models"}], "command": [], "args": [],
                    },
                )
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        for username, (password, is_manager) in DEMO_USERS.items():
            role = "manager" if is_manager else "model developer"
            self.stdout.write(f"  {role:16} {username} / {password}")
