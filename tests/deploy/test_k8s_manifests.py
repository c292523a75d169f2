"""The Kubernetes manifests in deploy/k8s: no cluster runs here, so every manifest is validated
offline against the Kubernetes OpenAPI schemas (strict: an unknown or misspelt field fails),
which kubernetes-validate ships, and checked against the code it deploys: the settings the
service reads, the user the image runs as, the probes' routes, the secrets it needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from kubernetes_validate import utils as k8s  # type: ignore[import-untyped]
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = (DEPLOY, DEPLOY / "backing")
OLDEST_KUBERNETES = (1, 29)  # the manifests must stay valid from this version on
# Variables the pods are given that are not reactpal settings, and who reads them.
FOREIGN_ENV = {"PGPASSWORD": "asyncpg: the password for DATABASE_URL, which carries none"}
SECRET_SETTINGS = {"AGENT_API_KEYS", "LLM_API_KEY"}


def manifest_files() -> list[Path]:
    return sorted(DEPLOY.rglob("*.yaml"))


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def listed(kustomization_dir: Path) -> list[Path]:
    (spec,) = load(kustomization_dir / "kustomization.yaml")
    return [kustomization_dir / name for name in spec["resources"]]


def applied() -> list[dict[str, Any]]:
    """What `kubectl apply -k` applies, from both kustomizations."""
    return [doc for folder in KUSTOMIZATIONS for path in listed(folder) for doc in load(path)]


def find(kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in applied() if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def workloads() -> list[dict[str, Any]]:
    return [r for r in applied() if r["kind"] in ("Deployment", "StatefulSet")]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    only: dict[str, Any]
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def config() -> dict[str, str]:
    data: dict[str, str] = find("ConfigMap", "reactpal-config")["data"]
    return data


def kubernetes_versions() -> list[str]:
    versions = {tuple(int(p) for p in v.split(".")[:2]) for v in k8s.all_versions()}
    return [f"{a}.{b}" for a, b in sorted(versions) if (a, b) >= OLDEST_KUBERNETES]


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (``1``, ``500m``, ``1536Mi``, ``2Gi``) as a number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    parsed = re.fullmatch(r"([0-9.]+)(m|k|M|G|Ki|Mi|Gi|)", str(value))
    assert parsed, f"{value!r} is not a quantity"
    return float(parsed[1]) * units.get(parsed[2], 1)


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_matches_the_kubernetes_schemas(path: Path) -> None:
    versions = kubernetes_versions()
    assert len(versions) >= 2, f"kubernetes-validate ships schemas for {versions} only"
    errors = []
    for resource in load(path):
        if resource["kind"] == "Kustomization":
            continue  # kustomize's own file, checked below
        for version in versions:
            try:
                k8s.validate(resource, version, strict=True)
            except k8s.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path)
                errors.append(f"{k8s.kn(resource)}, Kubernetes {version}: {where}: {exc.message}")
            except k8s.SchemaNotFoundError as exc:  # an API version that does not exist
                errors.append(exc.message)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_a_kustomization_lists_every_manifest_but_the_examples(folder: Path) -> None:
    (spec,) = load(folder / "kustomization.yaml")
    assert spec["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert spec["kind"] == "Kustomization"
    present = {
        p.name
        for p in folder.glob("*.yaml")
        if p.name != "kustomization.yaml" and not p.name.endswith(".example.yaml")
    }
    assert sorted(spec["resources"]) == sorted(present)


def test_secrets_are_referenced_never_applied() -> None:
    assert not [r for r in applied() if r["kind"] == "Secret"]
    examples = sorted(DEPLOY.rglob("*.example.yaml"))
    assert [p.relative_to(DEPLOY).as_posix() for p in examples] == [
        "backing/secret.example.yaml",
        "secret.example.yaml",
    ]
    for path in examples:
        (secret,) = load(path)
        assert secret["kind"] == "Secret"
        assert all(value == "REPLACE_ME" for value in secret["stringData"].values())
        assert "kubectl create secret generic" in path.read_text(encoding="utf-8")
    # The example's placeholder key, applied unchanged, stops the service: too short a key.
    (example,) = load(DEPLOY / "secret.example.yaml")
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(host="0.0.0.0", agent_api_keys=example["stringData"]["AGENT_API_KEYS"])


def test_every_configmap_key_is_a_setting_and_the_whole_is_valid() -> None:
    """The service ignores unknown variables without a word: a misspelt or removed setting
    would silently do nothing in the cluster."""
    data = config()
    for name in data:
        assert name == name.upper() and name.lower() in Settings.model_fields, (
            f"{name} in configmap.yaml is not a field of service.settings.Settings"
        )
    assert not SECRET_SETTINGS & set(data), "secrets go in the Secret, not the ConfigMap"
    assert make_url(data["DATABASE_URL"]).password is None, "the password is PGPASSWORD's"
    assert data.get("ALLOW_UNAUTHENTICATED", "false") == "false"
    assert data["SANDBOX_ALLOW_WEAK"] == "false"
    values = {name.lower(): value for name, value in data.items()}
    settings = Settings.model_validate({**values, "agent_api_keys": "a-key-of-16-chars-or-more"})
    assert settings.host == "0.0.0.0" and settings.llm_base_url is None  # the embedded model


def test_the_deployment_takes_settings_from_the_configmap_and_keys_from_secrets() -> None:
    deployment = find("Deployment", "reactpal")
    main = container(deployment)
    assert main["envFrom"] == [{"configMapRef": {"name": "reactpal-config"}}]
    env = {item["name"]: item for item in main["env"]}
    for name, item in env.items():
        assert name.lower() in Settings.model_fields or name in FOREIGN_ENV, name
        assert "value" not in item and "secretKeyRef" in item["valueFrom"], f"{name} inlined"
    assert env["AGENT_API_KEYS"]["valueFrom"]["secretKeyRef"] == {
        "name": "reactpal-secrets",
        "key": "AGENT_API_KEYS",
    }
    assert main["image"] == "reactpal:latest" and main["imagePullPolicy"] == "IfNotPresent"
    assert deployment["spec"]["replicas"] == 2


def test_every_workload_runs_unprivileged() -> None:
    assert {r["metadata"]["name"] for r in workloads()} == {"reactpal", "postgres", "redis"}
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        main = container(workload)
        context = main["securityContext"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert context["runAsNonRoot"] is True and context["runAsUser"] > 0, name
        assert context.get("privileged") is not True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        for profile in (pod["securityContext"]["seccompProfile"], context["seccompProfile"]):
            assert profile == {"type": "RuntimeDefault"}, name
        assert not any(pod.get(f) for f in ("hostNetwork", "hostPID", "hostIPC")), name
        assert pod["automountServiceAccountToken"] is False, name
        resources = main["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name


def test_the_service_runs_as_the_images_user_with_writable_tmp_and_data_dir() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert f"--uid {user[0]}" in dockerfile
    deployment = find("Deployment", "reactpal")
    pod = deployment["spec"]["template"]["spec"]
    for context in (pod["securityContext"], container(deployment)["securityContext"]):
        assert (context["runAsUser"], context["runAsGroup"]) == (int(user[0]), int(user[1]))
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    for path in ("/tmp", config()["DATA_DIR"]):
        assert path in mounts, f"{path} is not writable on a read-only root"
        assert "emptyDir" in volumes[mounts[path]]


def test_probes_resources_and_shutdown() -> None:
    deployment = find("Deployment", "reactpal")
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    (port,) = main["ports"]
    assert (port["name"], port["containerPort"]) == ("http", int(config()["PORT"]))
    probes = {kind: main[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    paths = {kind: probe["httpGet"]["path"] for kind, probe in probes.items()}
    assert paths == {"startupProbe": "/healthz", "livenessProbe": "/healthz",
                     "readinessProbe": "/readyz"}  # fmt: skip
    assert all(probe["httpGet"]["port"] == "http" for probe in probes.values())
    startup = probes["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # the model loads
    requests, limits = main["resources"]["requests"], main["resources"]["limits"]
    assert quantity(requests["cpu"]) == 1
    assert quantity(requests["memory"]) == 1.5 * 2**30
    assert quantity(limits["memory"]) == 2 * 2**30
    # SIGTERM: the preStop pause, then SHUTDOWN_GRACE_S for requests and again for runs.
    pause = main["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    grace = float(config()["SHUTDOWN_GRACE_S"])
    assert pod["terminationGracePeriodSeconds"] >= int(pause[1]) + 2 * grace + 10


def test_the_service_autoscaler_and_disruption_budget_select_the_pods() -> None:
    deployment = find("Deployment", "reactpal")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    service = find("Service", "reactpal")
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["selector"] == selector
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    hpa = find("HorizontalPodAutoscaler", "reactpal")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "reactpal"}  # fmt: skip
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    pdb = find("PodDisruptionBudget", "reactpal")["spec"]
    assert pdb == {"minAvailable": 1, "selector": {"matchLabels": selector}}


def test_replicas_share_the_backing_postgres_and_redis() -> None:
    database = make_url(config()["DATABASE_URL"])
    assert database.drivername == "postgresql+asyncpg"
    postgres = find("Service", "postgres")["spec"]["ports"][0]
    assert (database.host, database.port) == ("postgres", postgres["port"])
    statefulset = find("StatefulSet", "postgres")
    env = {item["name"]: item for item in container(statefulset)["env"]}
    assert env["POSTGRES_USER"]["value"] == database.username
    assert env["POSTGRES_DB"]["value"] == database.database
    password = container(find("Deployment", "reactpal"))["env"]
    (pgpassword,) = [item for item in password if item["name"] == "PGPASSWORD"]
    reference = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert {**pgpassword["valueFrom"]["secretKeyRef"], "optional": False} == {
        **reference,
        "optional": False,
    }
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(statefulset)["volumeMounts"]}
    assert env["PGDATA"]["value"].startswith(mounts[claim["metadata"]["name"]] + "/")
    redis = find("Service", "redis")["spec"]["ports"][0]
    assert config()["RATE_LIMIT_STORAGE_URL"] == f"redis://redis:{redis['port']}/0"
