"""Credentials and ``tidegate run`` usage: kubeconfig contexts, in-cluster, clear usage errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from controller import credentials
from controller.cli import RUN
from policy_engine.cli.common import Streams


def kubeconfig(tmp_path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "clusters": [
            {"name": "dev", "cluster": {"server": "https://dev.example:6443/",
                                        "certificate-authority": "ca.crt"}},
            {"name": "prod", "cluster": {"server": "https://prod.example:6443",
                                         "insecure-skip-tls-verify": True}},
        ],
        "users": [
            {"name": "alice", "user": {"token": "t0ken"}},
            {"name": "bot", "user": {"tokenFile": "bot.token"}},
        ],
        "contexts": [
            {"name": "dev", "context": {"cluster": "dev", "user": "alice", "namespace": "shop"}},
            {"name": "prod", "context": {"cluster": "prod", "user": "bot"}},
            {"name": "broken", "context": {"cluster": "nowhere", "user": "alice"}},
        ],
    }  # fmt: skip
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    (tmp_path / "bot.token").write_text("b0t\n")
    return path


def test_the_current_context_is_used_with_paths_relative_to_the_kubeconfig(
    tmp_path: Path,
) -> None:
    info = credentials.from_kubeconfig(kubeconfig(tmp_path))
    assert info.server == "https://dev.example:6443"
    assert info.ca_path == str(tmp_path / "ca.crt")
    assert info.token == "t0ken"
    assert info.default_namespace == "shop"


def test_a_named_context_and_a_token_file_are_honoured(tmp_path: Path) -> None:
    info = credentials.from_kubeconfig(kubeconfig(tmp_path), "prod")
    assert info.server == "https://prod.example:6443"
    assert info.insecure is True
    assert info.token == "b0t"


@pytest.mark.parametrize(
    ("context", "message"),
    [("missing", "no context named 'missing'"), ("broken", "no cluster named 'nowhere'")],
)
def test_an_unusable_context_is_named(tmp_path: Path, context: str, message: str) -> None:
    with pytest.raises(credentials.CredentialsError, match=message):
        credentials.from_kubeconfig(kubeconfig(tmp_path), context)


def test_kubeconfig_beats_the_pod_and_the_pod_beats_the_home_directory(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path)
    info, token_file = credentials.resolve(None, None, {"KUBECONFIG": str(path)})
    assert info.server == "https://dev.example:6443"
    assert token_file is None
    with pytest.raises(credentials.CredentialsError, match="--context needs a kubeconfig"):
        credentials.resolve(None, "prod", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})


def run_verb(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    code = RUN(list(argv), Streams(io.StringIO(), err))
    return code, err.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "--workers 0 must be at least 1"),
        (["--workers", "many"], "invalid int value"),
        (["--metrics-port", "70000"], "must be 0..65535"),
        (["--log-level", "loud"], "invalid choice"),
        (["--frobnicate"], "unrecognized arguments"),
        (["--kubeconfig", "/nonexistent/config"], "cannot read kubeconfig"),
    ],
)
def test_usage_errors_exit_2_with_a_hint_and_no_traceback(argv: list[str], message: str) -> None:
    code, err = run_verb(*argv)
    assert code == 2
    assert message in err
    assert "hint:" in err
    assert "Traceback" not in err
