"""Credentials: how the controller reaches the cluster, as a ``kopf.ConnectionInfo``.

Callers: ``controller.cli`` (``--kubeconfig``/``--context``, in-cluster), ``main``
(kopf's login handler), ``applying`` (the Writer's httpx client) and test harnesses.
One set of credentials serves kopf and the Writer alike. It reads files only;
it never logs or embeds a secret in a message.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import httpx
import kopf
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE = SERVICE_ACCOUNT / "token"


class CredentialsError(ValueError):
    """A kubeconfig or the in-cluster service account cannot be used."""


def from_kubeconfig(path: Path, context: str | None = None) -> kopf.ConnectionInfo:
    """The server and credentials of ``context`` (default: current-context) in ``path``."""
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CredentialsError(f"cannot read kubeconfig {str(path)!r}: {exc}") from exc
    if not isinstance(config, dict):
        raise CredentialsError(f"kubeconfig {str(path)!r} is not a mapping")
    name = context or config.get("current-context")
    if not name:
        raise CredentialsError(f"kubeconfig {str(path)!r} has no current-context; pass --context")
    ctx = _named(config, "contexts", name, path).get("context") or {}
    cluster = _named(config, "clusters", ctx.get("cluster"), path).get("cluster") or {}
    user: dict[str, Any] = {}
    if ctx.get("user"):
        user = _named(config, "users", ctx["user"], path).get("user") or {}
    if not cluster.get("server"):
        raise CredentialsError(f"kubeconfig {str(path)!r} context {name!r} has no cluster server")
    base = Path(path).resolve().parent

    def local(value: object) -> str | None:
        return str(base / str(value)) if value else None

    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = _read_token(Path(local(user["tokenFile"]) or ""))
    return kopf.ConnectionInfo(
        server=str(cluster["server"]).rstrip("/"),
        ca_path=local(cluster.get("certificate-authority")),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=token,
        username=user.get("username"),
        password=user.get("password"),
        certificate_path=local(user.get("client-certificate")),
        certificate_data=user.get("client-certificate-data"),
        private_key_path=local(user.get("client-key")),
        private_key_data=user.get("client-key-data"),
        default_namespace=ctx.get("namespace"),
    )


def _named(config: Mapping[str, Any], section: str, name: object, path: Path) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    raise CredentialsError(f"kubeconfig {str(path)!r} has no {section[:-1]} named {name!r}")


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(f"cannot read token file {str(path)!r}: {exc}") from exc


def in_cluster(environ: Mapping[str, str] | None = None) -> kopf.ConnectionInfo:
    """The pod's service account: ``KUBERNETES_SERVICE_HOST``/``PORT``, token and CA files."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise CredentialsError("not in a cluster: KUBERNETES_SERVICE_HOST is not set")
    host = f"[{host}]" if ":" in host else host
    namespace_file = SERVICE_ACCOUNT / "namespace"
    return kopf.ConnectionInfo(
        server=f"https://{host}:{port}",
        ca_path=str(SERVICE_ACCOUNT / "ca.crt"),
        token=_read_token(TOKEN_FILE),
        default_namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
    )


class TokenFileAuth(httpx.Auth):
    """Bearer auth from a token file, re-read when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: float | None = None
        self._token = ""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        stamp = self._path.stat().st_mtime
        if stamp != self._stamp:
            self._token, self._stamp = _read_token(self._path), stamp
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def resolve(
    kubeconfig: Path | None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[kopf.ConnectionInfo, Path | None]:
    """``kubeconfig``, else ``$KUBECONFIG``, else the in-cluster account, else ~/.kube/config.

    Returns:
        The credentials, and the token file to re-read when they come from the pod.
    """
    env = os.environ if environ is None else environ
    if kubeconfig is None and env.get("KUBECONFIG"):
        kubeconfig = Path(env["KUBECONFIG"].split(os.pathsep)[0])
    if kubeconfig is None and env.get("KUBERNETES_SERVICE_HOST"):
        if context:
            raise CredentialsError("--context needs a kubeconfig (running in-cluster)")
        return in_cluster(env), TOKEN_FILE
    if kubeconfig is None:
        kubeconfig = Path.home() / ".kube" / "config"
        if not kubeconfig.exists():
            raise CredentialsError("no cluster credentials found")
    return from_kubeconfig(kubeconfig, context), None
