#!/usr/bin/env bash
# Prepares this machine for Fencer's tests and sandbox; idempotent and silent when nothing is to do.
# 1. Dataplane tools the agent and the netns tests drive (installed with apt, as root, only when missing).
# 2. The pinned control-plane binaries (etcd, kube-apiserver, kubectl, helm), built once into a cache
#    by localcluster/build.sh (minutes on the first run, ~0.1 s afterwards).
# Called by `npm test` (scripts/test.ts) and by the sandbox.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# command → Debian package providing it
# (prometheus, promtool: test/integration/prometheus.test.ts runs its own Prometheus on a free loopback
#  port; on a systemd host the package also enables prometheus.service, which the tests do not need)
declare -A tools=([iptables]=iptables [ipset]=ipset [nft]=nftables [conntrack]=conntrack [ip]=iproute2 [socat]=socat [promtool]=prometheus)
missing=()
for tool in iptables ipset nft conntrack ip socat promtool; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${tools[$tool]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing ${missing[*]} ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
      cat "$log" >&2
      rm -f "$log"
      echo "[setup] apt-get failed" >&2
      exit 1
    fi
    rm -f "$log"
  else
    echo "[setup] warning: missing ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
  fi
fi

# build.sh says "<name>: cached" for every binary on each run: pass on only the lines that tell news
# (a cold build's progress), and the binaries' directory (its stdout) goes nowhere.
if ! bash "$root/localcluster/build.sh" 2>&1 >/dev/null | { grep --line-buffered -v ': cached$' >&2 || true; }; then
  echo "[setup] building the control-plane binaries failed (needs Go; see localcluster/build.sh)" >&2
  exit 1
fi
