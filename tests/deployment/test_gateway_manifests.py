"""The gateway's manifests (deploy/kubernetes/gateway.yaml) are valid Kubernetes, run the gateway as the restricted
Pod Security Standard asks, and fence the task pods off so that only the gateway reaches them."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from scheduler.runtimes.kubernetes.manifests import MANAGED_BY, MANAGER, TASK_LABEL

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "deploy" / "kubernetes" / "gateway.yaml"
DOCUMENTS = [doc for doc in yaml.safe_load_all(GATEWAY.read_text()) if doc]
NAMESPACE = "deploy-portal"


def _one(kind):
    (doc,) = [d for d in DOCUMENTS if d["kind"] == kind]
    return doc


def _selects(selector, labels):
    """Whether a LabelSelector (matchLabels and the In/NotIn/Exists/DoesNotExist expressions) matches ``labels``."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or ()
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _task_pod_labels():
    """The labels of a real task pod, as the Kubernetes runtime builds it."""
    from scheduler.runtimes.kubernetes.manifests import InstanceSpec, make_pod

    spec = InstanceSpec(task_id=7, run_id=3, instance_id=11, index=0, node_name="gpu-1", image="registry/m:1",
                        gpus=1, cpus=4, memory_gib=16, container_port=8000)
    return make_pod(spec, namespace=NAMESPACE)["metadata"]["labels"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=[f"{d['kind']}-{d['metadata']['name']}" for d in DOCUMENTS])
def test_gateway_manifests_validate(document):
    kubernetes_validate.validate(document, "1.37.0", strict=True)


def test_the_file_holds_what_the_gateway_needs_in_the_workload_namespace():
    kinds = {d["kind"] for d in DOCUMENTS}
    assert {"Deployment", "Service", "NetworkPolicy"} <= kinds
    for doc in DOCUMENTS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]
    rbac = ROOT / "deploy" / "kubernetes" / "rbac.yaml"
    namespaces = [d["metadata"]["name"] for d in yaml.safe_load_all(rbac.read_text()) if d and d["kind"] == "Namespace"]
    assert namespaces == [NAMESPACE]


def test_network_policy_admits_only_the_gateway_to_the_task_pods():
    policy = _one("NetworkPolicy")["spec"]
    template_labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    # It selects the task pods by the label the runtime gives them, and never the gateway itself.
    assert policy["podSelector"]["matchLabels"] == {MANAGED_BY: MANAGER}
    assert _selects(policy["podSelector"], _task_pod_labels())
    assert not _selects(policy["podSelector"], template_labels)
    assert MANAGED_BY not in template_labels
    assert "Ingress" in policy["policyTypes"]
    # One rule, one peer: pods of this namespace (no namespaceSelector, no ipBlock) carrying the gateway's label.
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "deploy-portal-gateway"}}
    assert _selects(peer["podSelector"], template_labels)
    assert not _selects(peer["podSelector"], _task_pod_labels())
    assert TASK_LABEL in {e["key"] for e in policy["podSelector"].get("matchExpressions", ())}


def test_the_nodeport_note_gives_the_ipblock_example():
    text = GATEWAY.read_text()
    assert "NodePort" in text and "#            cidr:" in text and "ipBlock" in text


def test_deployment_runs_run_gateway_with_probes_on_healthz():
    deployment = _one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert _selects(spec["selector"], spec["template"]["metadata"]["labels"])
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"] == ["python", "manage.py", "run_gateway", "--host", "0.0.0.0", "--port", "8001"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert 8001 in ports.values()
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert ports.get(get["port"], get["port"]) == 8001, probe
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
    env = {item["name"]: item for item in container["env"]}
    for name in ("DATABASE_URL", "SECRET_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "deploy-portal", "key": name}
    from django.core.management import get_commands

    assert "run_gateway" in get_commands()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "manage.py" in dockerfile and "COPY . ." in dockerfile  # the image holds manage.py in its WORKDIR


def test_deployment_meets_the_restricted_pod_security_standard():
    pod = _one("Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0  # the image has no USER of its own
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod.get("hostNetwork") is not True and pod.get("hostPID") is not True
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add")
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context.get("privileged") is not True
    # Only volume types the restricted profile allows; /tmp writable on the read-only root.
    assert all(set(volume) <= {"name", "emptyDir", "configMap", "secret", "projected"} for volume in pod["volumes"])
    mounts = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]}
    assert "/tmp" in mounts
    # Its own account, without a token: not the workers' account, which may create pods.
    account = _one("ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"] != "deploy-portal"
    assert account["automountServiceAccountToken"] is False


def test_service_exposes_port_80_to_the_gateway_port():
    service = _one("Service")["spec"]
    template = _one("Deployment")["spec"]["template"]
    assert service["type"] in ("ClusterIP", "LoadBalancer")
    assert _selects({"matchLabels": service["selector"]}, template["metadata"]["labels"])
    (port,) = service["ports"]
    ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    assert port["port"] == 80 and ports.get(port["targetPort"], port["targetPort"]) == 8001


def test_labels_are_consistent():
    for doc in DOCUMENTS:
        if doc["kind"] == "Namespace":
            continue
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "deploy-portal-gateway", doc["kind"]
        assert labels["app.kubernetes.io/part-of"] == "deploy-portal"
        assert labels["app.kubernetes.io/component"] == "gateway"
    deployment = _one("Deployment")
    assert deployment["spec"]["template"]["metadata"]["labels"] == deployment["metadata"]["labels"]
