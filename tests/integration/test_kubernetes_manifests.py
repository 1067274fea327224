"""deploy/kubernetes renders with ``kubectl kustomize`` and every object validates offline.

Each overlay (one per shard) is rendered by the real kubectl and each object is checked by
``kubernetes-validate`` (schemas shipped in the package, strict: unknown fields refused)
for every Kubernetes version deploy/kubernetes/README.md documents. Then what the daemon
needs of the pod is checked against the daemon itself: the mounted ``--config`` file is a
valid DaemonSettings, the ports, probes and state dir are the ones it uses, each variable
it is given is one ``gitfirm run --help`` explains, and it may take longer to stop than
SIGTERM takes to park.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.daemon import DaemonSettings

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (ROOT / "overlays").iterdir() if p.is_dir())
PARK_SECONDS = DaemonSettings.model_fields["shutdown_grace"].default
"""How long ``Daemon._shutdown`` (reconciler/daemon.py) waits for rollouts to park."""

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not installed (apt-get install kubectl); .ci/run installs it",
)


def documented_versions() -> list[str]:
    """The Kubernetes versions deploy/kubernetes/README.md says the manifests are for."""
    text = (ROOT / "README.md").read_text("utf-8")
    line = next(ln for ln in text.splitlines() if ln.startswith("Validated for Kubernetes"))
    return re.findall(r"\b1\.\d+\b", line)


def render(overlay: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "overlays" / overlay)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def test_two_example_shards_and_documented_versions() -> None:
    assert len(OVERLAYS) >= 2
    assert len(documented_versions()) >= 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_offline(overlay: str) -> None:
    from kubernetes_validate import validate

    docs = render(overlay)
    assert {d["kind"] for d in docs} >= {
        "Namespace", "ServiceAccount", "ConfigMap", "Service", "StatefulSet", "NetworkPolicy",
    }  # fmt: skip
    for version in documented_versions():
        for doc in docs:
            validate(doc, f"{version}.0", strict=True)  # raises on the first invalid field


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_is_what_the_daemon_needs(overlay: str) -> None:
    docs = render(overlay)
    namespace = one(docs, "Namespace")["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == namespace for d in docs if d is not None
               and d["kind"] != "Namespace")  # fmt: skip
    sts = one(docs, "StatefulSet")
    spec = sts["spec"]
    assert spec["replicas"] == 1  # one actor per shard
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > PARK_SECONDS + 10
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"

    # The --config file the pod mounts is valid settings, and agrees with the pod.
    args = container["args"]
    config_path = Path(args[args.index("--config") + 1])
    config = one(docs, "ConfigMap")
    settings = DaemonSettings.model_validate(yaml.safe_load(config["data"][config_path.name]))
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace + 10
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[config_volume]["configMap"]["name"] == config["metadata"]["name"]
    assert mounts[config_volume] == str(config_path.parent)
    claim = spec["volumeClaimTemplates"][0]["metadata"]["name"]
    assert mounts[claim] == str(settings.state_dir)
    assert settings.secrets.secrets_dir is not None
    assert str(settings.secrets.secrets_dir) in mounts.values()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.listen.endswith(f":{ports['http']}")
    assert settings.operator_listen and settings.operator_listen.endswith(f":{ports['operator']}")

    # Every variable the pod sets is one gitfirm documents (or git's own).
    helptext = _run_help()
    names = [e["name"] for e in container["env"]]
    assert {"GITFIRM_WEBHOOK_SECRET", "GITFIRM_BACKUP_KEY", "GITFIRM_OPERATOR_TOKEN"} <= set(names)
    assert all(n in helptext for n in names), names
    assert container["envFrom"][0]["secretRef"]["name"]

    # Routers reach /images on the http port; the operator surface has its own Service.
    images = one(docs, "Service", "gitfirm-images")
    operator = one(docs, "Service", "gitfirm-operator")
    pod_labels = spec["template"]["metadata"]["labels"]
    for service, port in ((images, "http"), (operator, "operator")):
        assert service["spec"]["ports"][0]["targetPort"] == port
        assert service["spec"]["selector"].items() <= pod_labels.items()
    assert operator["spec"]["type"] == "ClusterIP"
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()


def test_each_overlay_is_one_shard_of_one_repository() -> None:
    """Every overlay passes --shard and --shard-name (its own name) to ``gitfirm run``; all
    read one config repository and write one status branch; shards.yaml lists them."""
    from reconciler.cli import _build_parser, _run_settings
    from reconciler.model.shards import load_shards

    listed = {s.name: s.text for s in load_shards(ROOT / "shards.yaml")}
    assert sorted(listed) == OVERLAYS
    meeting = set()
    for overlay in OVERLAYS:
        docs = render(overlay)
        sts = one(docs, "StatefulSet")
        assert sts["metadata"]["labels"]["gitfirm.io/shard"] == overlay
        (container,) = sts["spec"]["template"]["spec"]["containers"]
        config = one(docs, "ConfigMap")
        with tempfile.TemporaryDirectory() as scratch:
            args = list(container["args"])
            path = Path(scratch) / "gitfirm.yaml"
            path.write_text(next(iter(config["data"].values())), "utf-8")
            args[args.index("--config") + 1] = str(path)
            settings = _run_settings(_build_parser().parse_args(args))
        assert settings.shard_name == overlay
        assert settings.shard == listed[overlay]
        meeting.add((settings.repo, settings.branch, settings.status_branch))
    assert len(meeting) == 1, meeting


def _run_help() -> str:
    gitfirm = Path(sys.executable).with_name("gitfirm")
    done = subprocess.run(
        [str(gitfirm), "run", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout
