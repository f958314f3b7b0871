#!/usr/bin/env bash
# `make e2e`: the live checks of the deployment artifacts, from a bare machine.
#
# Installs what is missing (Debian packages; Kubernetes, Jaeger, CoreDNS and
# kube-router built from the Go module proxy, cached under .hookstream/e2e/cache keyed by
# version), starts a Docker engine and a one-node cluster of its own, builds
# the image from the Dockerfile, runs tests/e2e against compose and
# Kubernetes, and always tears everything down again. Prints the time of each
# phase. Needs root.
set -uo pipefail
tooling=$(cd "$(dirname "$0")/tooling" && pwd)
source "$tooling/env.sh"
cd "$E2E_ROOT"

if ((EUID != 0)); then
  echo "make e2e needs root (it starts dockerd, containerd and a kubelet)" >&2
  exit 1
fi

# One run at a time on a machine: the cluster's addresses and ports are fixed.
mkdir -p /run/lock
exec 9>/run/lock/hookstream-e2e.lock
if ! flock -w 1800 9; then
  echo "another make e2e held the lock for 30 minutes" >&2
  exit 1
fi

mkdir -p "$E2E_HOME"
timings=$E2E_HOME/timings.txt
: >"$timings"
status=0
failed=()

# phase NAME COMMAND...: run and time one step; a failing step fails the run.
phase() {
  local name=$1 started=$SECONDS rc
  shift
  log "phase $name"
  "$@"
  rc=$?
  printf '%-22s %5ss  %s\n' "$name" $((SECONDS - started)) "$([[ $rc == 0 ]] && echo ok || echo "FAILED ($rc)")" | tee -a "$timings" >&2
  if ((rc != 0)); then
    status=1
    failed+=("$name")
  fi
  return "$rc"
}

teardown() {
  phase teardown "$tooling/teardown.sh"
  echo "---- make e2e phases" >&2
  cat "$timings" >&2
  if ((${#failed[@]})); then echo "make e2e FAILED: ${failed[*]}" >&2; else echo "make e2e passed" >&2; fi
}
trap teardown EXIT
trap 'failed+=(interrupted); exit 130' INT TERM

packages() {
  local need=()
  for pair in dockerd:docker.io containerd:containerd runc:runc iptables:iptables \
    mmdebstrap:mmdebstrap etcd:etcd-server conntrack:conntrack ipset:ipset openssl:openssl \
    /usr/lib/cni/bridge:containernetworking-plugins mvn:maven java:openjdk-17-jre-headless; do
    local cmd=${pair%%:*}
    if [[ $cmd == /* ]]; then [[ -e $cmd ]] && continue; else command -v "$cmd" >/dev/null && continue; fi
    need+=("${pair#*:}")
  done
  ((${#need[@]})) || return 0
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
}

go_builds() {
  "$tooling/build-go.sh" kubernetes "$KUBERNETES_VERSION" "$K8S_BIN" &&
    "$tooling/build-go.sh" jaeger "$JAEGER_VERSION" "$JAEGER_BIN" &&
    "$tooling/build-go.sh" coredns "$COREDNS_VERSION" "$COREDNS_BIN" &&
    "$tooling/build-go.sh" kube-router "$KUBE_ROUTER_VERSION" "$KUBE_ROUTER_BIN" &&
    "$tooling/build-go.sh" pause "$PAUSE_BIN"
}

pytest_e2e() {
  JAEGER_VERSION=$JAEGER_VERSION COREDNS_VERSION=$COREDNS_VERSION \
    timeout 1800 "$E2E_ROOT/.venv/bin/pytest" -p no:cacheprovider -o addopts= --timeout 900 -rA -v "$@"
}

images_to_cluster() {
  local kafka_image
  kafka_image=$(sed -nE 's/^ *image: (apache\/kafka:[^ ]+)$/\1/p' k8s/kafka/statefulset.yaml)
  "$tooling/cluster.sh" load hookstream:dev "$kafka_image" "hookstream-e2e/jaeger:$JAEGER_VERSION" \
    "hookstream-e2e/coredns:$COREDNS_VERSION" hookstream-e2e/pause:1
}

# Each phase needs the ones before it; stop at the first failure.
phase packages packages &&
  phase compose-cli make --no-print-directory "$E2E_ROOT/.hookstream/bin/docker-compose" &&
  phase go-builds go_builds &&
  phase engine "$tooling/engine.sh" start &&
  phase stand-in-images "$tooling/images.sh" all &&
  phase image docker build --quiet --tag hookstream:dev "$E2E_ROOT" &&
  {
    phase compose pytest_e2e tests/e2e/test_image.py tests/e2e/test_compose.py
    phase cluster "$tooling/cluster.sh" start &&
      phase cluster-images images_to_cluster &&
      phase kubernetes pytest_e2e tests/e2e/test_kubernetes.py
  }
exit "$status"
