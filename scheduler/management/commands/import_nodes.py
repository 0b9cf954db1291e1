"""Import machines: from the Kubernetes cluster's labelled GPU nodes, or this machine for the local runtime.

Kubernetes: every node labelled ``KUBERNETES_VC_LABEL=<virtual cluster name>`` with allocatable
``nvidia.com/gpu`` becomes (or updates) a machine of that VC: GPU type from
``KUBERNETES_GPU_PRODUCT_LABEL``, SKU capacity = allocatable GPUs ÷ the VC's GPUs per SKU,
schedulable when Ready and not cordoned. ``--prune`` cordons (never deletes) machines of those VCs
the cluster no longer reports. ``--local`` adds this machine to ``--virtual-cluster`` with the GPUs
``nvidia-smi`` lists (else ``LOCAL_GPU_COUNT``). Each VC whose machines changed has its queue
re-examined at once.
"""

import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from clusters.models import Node, VirtualCluster
from scheduler.runtimes import get_runtime
from scheduler.runtimes.kubernetes.nodes import ClusterNode, cluster_nodes
from scheduler.runtimes.kubernetes.runtime import KubernetesRuntime
from scheduler.runtimes.local.gpus import local_gpus
from scheduler.scheduling import schedule_virtual_cluster


class Command(BaseCommand):
    help = "Import GPU machines from the Kubernetes cluster's labelled nodes (or this machine with --local)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
        parser.add_argument("--prune", action="store_true", help="cordon machines the cluster no longer reports")
        parser.add_argument(
            "--create-virtual-clusters",
            action="store_true",
            help="create a VC named by the label when none exists (1 GPU per SKU)",
        )
        parser.add_argument("--local", action="store_true", help="import this machine instead of the cluster's nodes")
        parser.add_argument("--virtual-cluster", help="with --local: the VC this machine belongs to")
        parser.add_argument("--name", default=None, help="with --local: the machine's name (default: the host name)")

    def handle(self, *, dry_run, prune, create_virtual_clusters, local, virtual_cluster, name, **options):
        if local:
            if not virtual_cluster:
                raise CommandError("--local needs --virtual-cluster NAME")
            gpus = local_gpus()
            gpu_type = gpus[0].name if gpus and gpus[0].name else "local"
            found = [
                ClusterNode(
                    name=name or socket.gethostname(),
                    virtual_cluster=virtual_cluster,
                    gpu_type=gpu_type,
                    gpus=len(gpus),
                    schedulable=True,
                )
            ]
        else:
            found = self._cluster_nodes()
        with transaction.atomic():
            changed_vcs, lines = self._sync(found, prune=prune, create=create_virtual_clusters)
            if dry_run:
                transaction.set_rollback(True)
        for line in lines:
            self.stdout.write(line)
        if dry_run:
            self.stdout.write("dry run: nothing changed")
            return
        for vc_id in sorted(changed_vcs):
            schedule_virtual_cluster(virtual_cluster_id=vc_id)

    @staticmethod
    def _cluster_nodes():
        runtime = get_runtime() if settings.DEPLOY_RUNTIME == "kubernetes" else KubernetesRuntime()
        return cluster_nodes(
            runtime.nodes(), vc_label=settings.KUBERNETES_VC_LABEL, gpu_label=settings.KUBERNETES_GPU_PRODUCT_LABEL
        )

    @staticmethod
    def _sync(found, *, prune, create):
        changed, lines = set(), []
        vcs = {
            vc.name: vc
            # The lock order of every decision: VC rows in id order.
            for vc in VirtualCluster.objects.select_for_update().filter(
                name__in={n.virtual_cluster for n in found}
            ).order_by("pk")
        }
        for item in found:
            vc = vcs.get(item.virtual_cluster)
            if vc is None and create:
                vc = vcs[item.virtual_cluster] = VirtualCluster.objects.create(
                    name=item.virtual_cluster, gpu_type=item.gpu_type
                )
                lines.append(f"created virtual cluster {vc.name}")
            if vc is None:
                lines.append(f"skipped {item.name}: no virtual cluster named {item.virtual_cluster!r}")
                continue
            capacity = item.gpus // vc.sku_gpus
            if capacity < 1:
                lines.append(f"skipped {item.name}: {item.gpus} GPUs make no SKU of {vc.sku_gpus} GPUs")
                continue
            wanted = {
                "virtual_cluster": vc,
                "gpu_type": item.gpu_type,
                "sku_capacity": capacity,
                "schedulable": item.schedulable,
            }
            node = Node.objects.select_for_update().filter(name=item.name).first()
            if node is None:
                Node.objects.create(name=item.name, **wanted)
                lines.append(f"added {item.name} to {vc.name}: {capacity} SKUs of {item.gpu_type}")
                changed.add(vc.pk)
                continue
            if node.virtual_cluster_id != vc.pk and node.instances.holding().exists():
                lines.append(f"kept {item.name} in its virtual cluster: it runs instances now")
                continue
            diff = {key: value for key, value in wanted.items() if getattr(node, key) != value}
            if diff:
                changed |= {node.virtual_cluster_id, vc.pk}
                for key, value in diff.items():
                    setattr(node, key, value)
                node.save(update_fields=list(diff))
                lines.append(f"updated {item.name}: {', '.join(sorted(diff))}")
        if prune:
            reported = {item.name for item in found}
            for node in Node.objects.select_for_update().filter(virtual_cluster__in=vcs.values(), schedulable=True):
                if node.name not in reported:
                    node.schedulable = False
                    node.save(update_fields=["schedulable"])
                    lines.append(f"cordoned {node.name}: the cluster no longer reports it")
        return changed, lines
