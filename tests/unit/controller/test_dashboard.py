"""The dashboard URL of a Rollout for GitHub's ``environment_url`` (KUBERIK-SEMANTICS.md §7)."""

from __future__ import annotations

from typing import Any

from controller.planning.dashboard import HTTPROUTES, INGRESSES, dashboard_url, environment_url
from controller.stores import Stores


def ingress(name: str, host: str, service: str, tls: bool = False, ns: str = "ops") -> Any:
    path = {"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 80}}}}  # fmt: skip
    spec: dict[str, Any] = {"rules": [{"host": host, "http": {"paths": [path]}}]}
    if tls:
        spec["tls"] = [{"hosts": [host], "secretName": "cert"}]
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def route(name: str, hostnames: list[str], service: str) -> Any:
    rules = [{"backendRefs": [{"name": service, "port": 80}]}]
    return {"metadata": {"name": name, "namespace": "ops"},
            "spec": {"hostnames": hostnames, "rules": rules}}  # fmt: skip


def test_an_ingress_to_the_dashboard_gives_its_url_with_the_scheme_its_tls_implies() -> None:
    plain = [ingress("dash", "dash.example.com", "rollout-dashboard")]
    secured = [ingress("dash", "dash.example.com", "rollout-dashboard", tls=True)]
    assert dashboard_url(plain, [], "shop", "web") == "http://dash.example.com/rollouts/shop/web"
    assert dashboard_url(secured, [], "shop", "web") == (
        "https://dash.example.com/rollouts/shop/web"
    )


def test_only_routes_to_the_dashboard_service_count_and_the_first_by_name_wins() -> None:
    other = ingress("a-other", "other.example.com", "grafana")
    second = ingress("c-dash", "c.example.com", "rollout-dashboard")
    first = ingress("b-dash", "b.example.com", "rollout-dashboard")
    found = dashboard_url([other, second, first], [], "shop", "web")
    assert found == "http://b.example.com/rollouts/shop/web"
    assert dashboard_url([other], [], "shop", "web") is None


def test_an_http_route_with_a_concrete_hostname_counts() -> None:
    wildcard = route("w", ["*.example.com"], "rollout-dashboard")
    concrete = route("r", ["*.example.com", "dash.example.com"], "rollout-dashboard")
    assert dashboard_url([], [wildcard], "shop", "web") is None
    assert dashboard_url([], [concrete], "shop", "web") == (
        "https://dash.example.com/rollouts/shop/web"
    )


def test_the_annotation_wins_and_unsynced_kinds_give_nothing() -> None:
    stores = Stores()
    env: dict[str, Any] = {"metadata": {"name": "prod", "namespace": "shop"},
           "spec": {"rolloutRef": {"name": "web"}}}  # fmt: skip
    assert environment_url(env, stores) is None  # neither kind is synced
    stores.replace_all(INGRESSES, [ingress("dash", "d.example.com", "rollout-dashboard")], "1")
    stores.replace_all(HTTPROUTES, [], "1")
    assert environment_url(env, stores) == "http://d.example.com/rollouts/shop/web"
    url = {"tidegate.dev/environment-url": "https://x.example/prod"}
    annotated = {**env, "metadata": {**env["metadata"], "annotations": url}}
    assert environment_url(annotated, stores) == "https://x.example/prod"
