"""The RBAC manifests operators apply are valid Kubernetes and grant what the runtime calls."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "rbac.yaml"
DOCUMENTS = [doc for doc in yaml.safe_load_all(RBAC.read_text()) if doc]


@pytest.mark.parametrize("document", DOCUMENTS, ids=[f"{d['kind']}-{d['metadata']['name']}" for d in DOCUMENTS])
def test_rbac_manifests_validate(document):
    kubernetes_validate.validate(document, "1.37.0", strict=True)


def test_role_grants_what_the_runtime_does():
    role = next(d for d in DOCUMENTS if d["kind"] == "Role")
    granted = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    for resource in ("pods", "services", "secrets"):  # secrets: the runs' secret env vars
        for verb in ("get", "list", "create", "delete"):
            assert (resource, verb) in granted
    assert ("pods/log", "get") in granted and ("events", "list") in granted
    nodes = next(d for d in DOCUMENTS if d["kind"] == "ClusterRole")
    assert nodes["rules"][0]["resources"] == ["nodes"] and "list" in nodes["rules"][0]["verbs"]
