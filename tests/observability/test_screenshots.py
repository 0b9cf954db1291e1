"""The utilisation and GPU-hours pages in Chromium, in both languages: the plots are drawn, their words translated.

``SCREENSHOT_DIR=docs/screenshots`` keeps the pictures; without it they go to test-output/screenshots.
"""

import math
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from observability.models import HOUR, AllocationSample, ClusterSample
from tasks.models import TaskEvent
from tasks.states import Status
from tests.browser import log_in
from tests.factories import NodeFactory, ProjectFactory, TaskFactory, UserFactory, VirtualClusterFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]


def month_of_history():
    """A month of a 16-GPU VC: hourly rows for 30 days, minutes for the last day; waits of a few tasks."""
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    llm, vision = ProjectFactory(name="llm-serving", members=[alice]), ProjectFactory(name="vision", members=[alice])
    vc = VirtualClusterFactory(name="h100-pool", users=[alice])
    NodeFactory(virtual_cluster=vc, sku_capacity=8)
    NodeFactory(virtual_cluster=vc, sku_capacity=8)
    now = timezone.now().replace(second=0, microsecond=0)
    rolled = now.replace(minute=0) - timedelta(hours=1)
    clusters, allocations = [], []

    def held(t):  # a daily rhythm: busy by day, quieter at night
        return max(2, round(10 + 5 * math.sin((t.timestamp() / 3600 - 8) * math.pi / 12)))

    for hours in range(30 * 24, 0, -1):
        at = rolled - timedelta(hours=hours)
        gpus = held(at)
        clusters.append(ClusterSample(virtual_cluster=vc, at=at, span_seconds=HOUR, total_gpu_seconds=16 * HOUR,
                                      allocated_gpu_seconds=gpus * HOUR, queued_task_seconds=(gpus // 5) * HOUR))
        for project, owner, share in ((llm, alice, 0.7), (vision, bob, 0.3)):
            allocations.append(AllocationSample(virtual_cluster=vc, project=project, owner=owner, at=at,
                                                span_seconds=HOUR, gpu_seconds=round(gpus * share) * HOUR))
    for minutes in range(24 * 60, 0, -1):
        at = now - timedelta(minutes=minutes)
        gpus = held(at)
        clusters.append(ClusterSample(virtual_cluster=vc, at=at, total_gpu_seconds=16 * 60,
                                      allocated_gpu_seconds=gpus * 60, queued_task_seconds=(gpus // 5) * 60))
    ClusterSample.objects.bulk_create(clusters)
    AllocationSample.objects.bulk_create(allocations)
    for index, waited in enumerate((3, 8, 15, 22, 40, 41, 65)):
        task = TaskFactory(virtual_cluster=vc, project=llm, owner=alice, status=Status.DEPLOYING)
        queued = TaskEvent.objects.create(task=task, from_status="not_deployed", to_status="queued", operation="start")
        placed = TaskEvent.objects.create(task=task, from_status="queued", to_status="deploying", operation="place")
        at = now - timedelta(hours=index + 2)
        TaskEvent.objects.filter(pk=queued.pk).update(created_at=at)
        TaskEvent.objects.filter(pk=placed.pk).update(created_at=at + timedelta(minutes=waited))
    return alice, vc


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_utilisation_pages_draw_their_plots_in_both_languages(browser_context, language):
    target = Path(os.environ.get("SCREENSHOT_DIR", REPO / "test-output" / "screenshots"))
    target.mkdir(parents=True, exist_ok=True)
    suffix = "zh" if language == "zh-hans" else "en"
    alice, vc = month_of_history()
    page = log_in(browser_context(language), alice.username)

    for range_name in ("24h", "30d"):
        page.goto(f"/virtual-clusters/{vc.pk}/utilisation/?range={range_name}")
        for plot in ("#plot-gpus", "#plot-queue", "#plot-waits"):
            expect(page.locator(f"{plot} .uplot canvas")).to_have_count(1)
        legend = page.locator("#plot-gpus .u-legend")
        expect(legend).to_contain_text("已分配 GPU" if language == "zh-hans" else "Allocated GPUs")
        path = target / f"utilisation-{range_name}-{suffix}.png"
        page.screenshot(path=path, full_page=True)
        assert path.stat().st_size < 600_000

    page.goto("/gpu-hours/")
    expect(page.locator("table.gpu-hours[data-by=project] tbody tr")).to_have_count(2)
    expect(page.locator("#id_since")).to_have_value(timezone.localdate().replace(day=1).isoformat())
    expect(page.locator("h1")).to_have_text("GPU 卡时" if language == "zh-hans" else "GPU-hours")
    page.screenshot(path=target / f"gpu-hours-{suffix}.png", full_page=True)
