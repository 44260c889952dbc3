"""The Helm chart, rendered by a real helm: manifests parse, RBAC is exactly the expected set,
the security context is as promised, and `helm lint` passes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm import helm_binary

CHART = Path(__file__).resolve().parents[2] / "helm" / "roomctl"
HELM, WHY = helm_binary()
pytestmark = pytest.mark.skipif(HELM is None, reason=f"no helm binary: {WHY}")

ROOM_RULES = [
    {"apiGroups": ["roomctl.dev"], "resources": ["rooms", "plugnmeetrooms", "roompolicies"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["roomctl.dev"], "resources": ["rooms/status", "plugnmeetrooms/status", "roompolicies/status"], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]


def render(*sets: str) -> list[dict[str, Any]]:
    args = [str(HELM), "template", "rel", str(CHART), "--namespace", "roomctl-system", "--include-crds"]
    for item in sets:
        args += ["--set", item]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_helm_lint_passes() -> None:
    result = subprocess.run([str(HELM), "lint", str(CHART), "--strict"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_render_is_cluster_wide_with_exactly_the_needed_rules() -> None:
    docs = render("livekit.url=https://lk.example", "livekit.apiKey=k", "livekit.apiSecret=s")
    assert {d["kind"] for d in docs} == {"CustomResourceDefinition", "ServiceAccount", "ClusterRole",
                                         "ClusterRoleBinding", "Secret", "Service", "Deployment"}
    assert sorted(c["metadata"]["name"] for c in kinds(docs, "CustomResourceDefinition")) == [
        "plugnmeetrooms.roomctl.dev", "roompolicies.roomctl.dev", "rooms.roomctl.dev"]
    (role,) = kinds(docs, "ClusterRole")
    assert role["rules"] == ROOM_RULES  # no Secrets unless named, nothing kopf does not use
    (binding,) = kinds(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rel-roomctl", "namespace": "roomctl-system"}]


def test_deployment_is_one_hardened_replica() -> None:
    (deploy,) = kinds(render("livekit.url=https://lk.example", "livekit.existingSecret=lk"), "Deployment")
    spec = deploy["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    env = {e["name"]: e for e in container["env"]}
    assert env["LIVEKIT_URL"]["value"] == "https://lk.example"
    assert env["LIVEKIT_API_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "lk", "key": "apiSecret"}
    assert container["args"][:2] == ["operator", "--sync-interval=60"]


def test_watched_namespaces_get_roles_and_secret_access_is_by_name() -> None:
    docs = render("watchNamespaces={events,support}", "serverRefSecrets={lk-eu,lk-us}", "logLevel=debug")
    assert not kinds(docs, "ClusterRole") and not kinds(docs, "Secret")
    roles = kinds(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["events", "support"]
    for role in roles:
        assert role["rules"] == [*ROOM_RULES, {"apiGroups": [""], "resources": ["secrets"],
                                               "resourceNames": ["lk-eu", "lk-us"], "verbs": ["get"]}]
    (deploy,) = kinds(docs, "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=events" in args and "--namespace=support" in args and "-v" in args


def test_chart_crds_are_the_generated_ones() -> None:
    from reconciler.crd import all_crds

    rendered = kinds(render(), "CustomResourceDefinition")
    by_name = {c["metadata"]["name"]: c for c in rendered}
    assert by_name == {c["metadata"]["name"]: c for c in all_crds()}
    assert len(rendered) == 3


def test_plugnmeet_server_from_values_or_an_existing_secret() -> None:
    docs = render("plugnmeet.url=https://pnm.example", "plugnmeet.apiKey=pk", "plugnmeet.apiSecret=ps")
    secrets = {d["metadata"]["name"]: d for d in kinds(docs, "Secret")}
    assert secrets["rel-roomctl-plugnmeet"]["stringData"] == {"apiKey": "pk", "apiSecret": "ps"}
    (deploy,) = kinds(docs, "Deployment")
    env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PLUGNMEET_URL"]["value"] == "https://pnm.example"
    assert env["PLUGNMEET_API_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "rel-roomctl-plugnmeet",
                                                                        "key": "apiSecret"}
    assert "LIVEKIT_URL" not in env
    existing = render("plugnmeet.url=https://pnm.example", "plugnmeet.existingSecret=pnm")
    assert not kinds(existing, "Secret")
    (deploy,) = kinds(existing, "Deployment")
    env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PLUGNMEET_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "pnm", "key": "apiKey"}


def test_service_monitor_is_off_by_default_and_rendered_when_enabled() -> None:
    assert not kinds(render(), "ServiceMonitor")
    docs = render("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom",
                  "metrics.serviceMonitor.interval=15s")
    (monitor,) = kinds(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "roomctl-system" and monitor["metadata"]["labels"]["release"] == "prom"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    # It selects exactly the metrics Service (not any other Service of the release) on its named port.
    services = [s for s in kinds(docs, "Service")
                if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in services] == ["rel-roomctl-metrics"]
    assert [p["name"] for p in services[0]["spec"]["ports"]] == ["metrics"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["roomctl-system"]}
    failed = subprocess.run([str(HELM), "template", "rel", str(CHART), "--set", "metrics.serviceMonitor.enabled=true",
                             "--set", "metrics.service=false"], capture_output=True, text=True)
    assert failed.returncode != 0 and "metrics.serviceMonitor.enabled needs" in failed.stderr


def notes(*sets: str) -> str:
    args = [str(HELM), "install", "rel", str(CHART), "--namespace", "roomctl-system", "--dry-run=client"]
    for item in sets:
        args += ["--set", item]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return out.split("NOTES:", 1)[1]


def test_notes_use_the_namespaces_of_this_install() -> None:
    watched = notes("watchNamespaces={events,support}", "livekit.url=https://lk", "plugnmeet.url=https://pnm")
    assert "installed in namespace roomctl-system" in watched and "Watching: events, support" in watched
    commands = [line[line.index("kubectl"):].split("#")[0].strip() for line in watched.splitlines()
                if "kubectl" in line]
    assert len(commands) == 4 and all(c.startswith("kubectl -n ") for c in commands), commands
    assert "kubectl -n events apply -f - <<'YAML'" in commands
    assert "kubectl -n roomctl-system logs deploy/rel-roomctl" in commands
    assert "WARNING" not in watched and "Note:" not in watched
    everywhere = notes()
    assert "Watching: all namespaces" in everywhere and "kubectl -n roomctl-system apply -f -" in everywhere
    assert "livekit.url is empty" in everywhere and "plugnmeet.url is empty" in everywhere


def test_webhook_endpoint_is_off_by_default_and_a_service_when_enabled() -> None:
    docs = render("livekit.url=https://lk.example", "livekit.existingSecret=lk")
    assert not [s for s in kinds(docs, "Service") if s["metadata"]["name"].endswith("-webhook")]
    (deploy,) = kinds(docs, "Deployment")
    assert not any(a.startswith("--webhook") for a in deploy["spec"]["template"]["spec"]["containers"][0]["args"])
    docs = render("livekit.url=https://lk.example", "livekit.existingSecret=lk", "webhook.enabled=true",
                  "webhook.port=9443", "webhook.service.port=8080")
    (service,) = [s for s in kinds(docs, "Service") if s["metadata"]["name"] == "rel-roomctl-webhook"]
    assert service["spec"]["ports"] == [{"name": "webhook", "port": 8080, "targetPort": "webhook"}]
    (deploy,) = kinds(docs, "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert "--webhook-listen=0.0.0.0:9443" in container["args"]
    assert {"name": "webhook", "containerPort": 9443} in container["ports"]
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]

