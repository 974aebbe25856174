#!/usr/bin/env bash
# Builds kube-apiserver, etcd, kubectl and helm from the pinned Go module into a cache outside the
# work tree, once per go.sum; later runs reuse the binaries. Prints the directory on stdout's last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
key=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-16)
cache="${FENCER_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fencer/bin}/$key"
mkdir -p "$cache"
declare -A pkgs=(
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [helm]=helm.sh/helm/v3/cmd/helm
)
cd "$here"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
for name in etcd kube-apiserver kubectl helm; do
  if [ -x "$cache/$name" ]; then
    echo "[cluster-bin] $name: cached" >&2
    continue
  fi
  echo "[cluster-bin] building $name from ${pkgs[$name]} (a cold build takes minutes) ..." >&2
  start=$(date +%s)
  # Build to a temp name and rename so an interrupted build never leaves a half-written binary.
  go build -trimpath -ldflags='-s -w' -o "$cache/$name.tmp" "${pkgs[$name]}"
  mv "$cache/$name.tmp" "$cache/$name"
  echo "[cluster-bin] $name built in $(( $(date +%s) - start ))s" >&2
done
echo "$cache"
