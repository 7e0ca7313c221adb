"""Debian's docker-registry as a test server, with artifacts pushed by the oras SDK.

Callers: tests/integration/oci (fixtures in its conftest) and the controller
behaviour tests (a registry holding the releases a Rollout observes). A missing
binary fails the test with the install hint. Nothing here is imported by
non-test code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

import oras.client
import pytest
from promserver import free_port, wait_for

READY_TIMEOUT = 30.0
REPOSITORY = "tidegate/app"
PRIVATE_REPOSITORY = "tidegate/private"
USER, PASSWORD = "alice", "s3cret-Pa55"
CONFIG_TYPE = "application/vnd.tidegate.config.v1+json"
RELEASE_TYPE = "application/vnd.tidegate.release.v1"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INSTALL_HINT = "docker-registry not installed: apt-get install -y docker-registry"


def release_annotations(version: str) -> dict[str, str]:
    """The full set of org.opencontainers.image.* annotations for ``version``."""
    prefix = "org.opencontainers.image."
    return {
        prefix + "version": version,
        prefix + "revision": f"rev-{version}",
        prefix + "created": "2026-01-02T03:04:05Z",
        prefix + "source": "https://git.example.com/shop/app",
        prefix + "title": "app",
        prefix + "description": f"the app, release {version}",
    }


@dataclass
class Registry:
    """A running ``docker-registry``: ``host`` (127.0.0.1:port), pushed digests by tag."""

    host: str
    process: subprocess.Popen[bytes]
    root: Path
    credentials: tuple[str, str] | None = None
    pushed: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    def image(self, repository: str = REPOSITORY) -> str:
        return f"{self.host}/{repository}"

    def _client(self) -> oras.client.OrasClient:
        backend = "token" if self.credentials is None else "basic"  # htpasswd speaks Basic only
        client = oras.client.OrasClient(hostname=self.host, insecure=True, auth_backend=backend)
        if self.credentials is not None:
            client.auth.set_basic_auth(*self.credentials)
        return client

    def push(
        self,
        tag: str,
        *,
        repository: str = REPOSITORY,
        annotations: dict[str, str] | None = None,
        config_annotations: dict[str, str] | None = None,
        config_media_type: str | None = None,
        artifact_type: str | None = None,
    ) -> str:
        """Pushes an artifact with oras and returns the manifest digest the registry reports."""
        client, target = self._client(), f"{self.image(repository)}:{tag}"
        config = self.root / "config.json"
        config.write_text("{}")
        spec = self.root / f"annotations-{tag}.json"
        spec.write_text(json.dumps({"$config": config_annotations or {}}))
        response = client.push(
            target,
            files=[],
            manifest_config=f"{config}:{config_media_type}" if config_media_type else None,
            annotation_file=str(spec),
            manifest_annotations=annotations,
            quiet=True,
        )
        if artifact_type is not None:
            manifest = client.get_manifest(target)
            manifest["artifactType"] = artifact_type
            response = client.upload_manifest(manifest, client.get_container(target))
        digest: str = response.headers["Docker-Content-Digest"]
        self.pushed[tag] = digest
        self.annotations[tag] = {**(config_annotations or {}), **(annotations or {})}
        return digest

    def push_index(self, tag: str, child: str, annotations: dict[str, str]) -> str:
        """PUTs an OCI image index over the manifest ``child`` (a digest) with oras' session."""
        client = self._client()
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": INDEX_TYPE,
                "manifests": [{"mediaType": MANIFEST_TYPE, "digest": child, "size": 1}],
                "annotations": annotations,
            }
        ).encode()
        url = f"{self.base_url}/v2/{REPOSITORY}/manifests/{tag}"
        response = client.do_request(url, "PUT", headers={"Content-Type": INDEX_TYPE}, data=body)
        assert response.status_code == 201, response.text
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        assert response.headers["Docker-Content-Digest"] == digest
        self.pushed[tag] = digest
        self.annotations[tag] = annotations
        return digest

    def log(self, lines: int = 30) -> str:
        text = (self.root / "registry.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Ends the registry process by PID (terminate, then kill)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _htpasswd_line(user: str, password: str) -> str:
    binary = shutil.which("htpasswd")
    if binary is None:
        pytest.fail(
            "htpasswd (bcrypt for the registry) not installed: apt-get install -y apache2-utils"
        )
    done = subprocess.run(
        [binary, "-nbB", user, password], capture_output=True, text=True, check=True
    )
    return done.stdout.strip() + "\n"


def start_registry(root: Path, credentials: tuple[str, str] | None = None) -> Registry:
    """Starts ``docker-registry serve`` on a free loopback port and waits for ``/v2/``."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail(INSTALL_HINT)
    port = free_port()
    auth = ""
    if credentials is not None:
        (root / "htpasswd").write_text(_htpasswd_line(*credentials))
        auth = f"auth:\n  htpasswd:\n    realm: tidegate-test\n    path: {root / 'htpasswd'}\n"
    (root / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: tidegate-test-secret\n" + auth
    )
    with (root / "registry.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT
        )
    registry = Registry(f"127.0.0.1:{port}", process, root, credentials)

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited with {process.returncode}:\n{registry.log()}")
        try:
            with urlopen(f"{registry.base_url}/v2/", timeout=2):
                return True
        except HTTPError as exc:
            return exc.code == 401
        except (URLError, OSError):
            return False

    try:
        wait_for(f"docker-registry on {registry.host}/v2/", ready)
    except BaseException:
        registry.stop()
        raise
    return registry
