# Shared settings of the live checks; sourced by the other scripts.
# Caches (binaries keyed by version, the Docker data root) live under
# .hookstream/e2e; sockets and run state under /run/hookstream-e2e, removed by
# `teardown.sh`.

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
E2E_HOME=${E2E_HOME:-$E2E_ROOT/.hookstream/e2e}
E2E_CACHE=$E2E_HOME/cache
E2E_RUN=${E2E_RUN:-/run/hookstream-e2e}

KUBERNETES_VERSION=${KUBERNETES_VERSION:-v1.32.4}
JAEGER_VERSION=${JAEGER_VERSION:-v1.76.0}      # Jaeger v2, published under the v1.x module tags
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.1}
KUBE_ROUTER_VERSION=${KUBE_ROUTER_VERSION:-v2.1.0}  # its network policy controller enforces NetworkPolicies
DEBIAN_SUITE=bookworm

K8S_BIN=$E2E_CACHE/kubernetes-$KUBERNETES_VERSION
JAEGER_BIN=$E2E_CACHE/jaeger-$JAEGER_VERSION
COREDNS_BIN=$E2E_CACHE/coredns-$COREDNS_VERSION
KUBE_ROUTER_BIN=$E2E_CACHE/kube-router-$KUBE_ROUTER_VERSION
PAUSE_BIN=$E2E_CACHE/pause

# The Docker engine started for the checks, and nothing else.
DOCKER_HOST=unix://$E2E_RUN/docker.sock
export DOCKER_HOST
# The classic builder: BuildKit would fetch the frontend that the Dockerfile's
# `# syntax=docker/dockerfile:1` line names from a registry, which is out of
# reach here (users have one; the line stays).
export DOCKER_BUILDKIT=0
DOCKER_BRIDGE=hs-docker0
DOCKER_BRIDGE_CIDR=10.125.0.1/24
export PATH=$K8S_BIN:$E2E_ROOT/.hookstream/bin:$PATH

# The one-node cluster: its address lives on an interface of its own (the
# kubelet refuses a loopback node IP); pods get 10.244.0.0/24 on bridge hs-cni0.
NODE_NAME=hookstream-e2e
NODE_IFACE=hs-e2e0
NODE_IP=10.123.0.1
POD_CIDR=10.244.0.0/24
POD_BRIDGE=hs-cni0
SERVICE_CIDR=10.96.0.0/24
CLUSTER_DNS=$NODE_IP
export KUBECONFIG=$E2E_RUN/k8s/admin.kubeconfig

log() { printf '%s e2e: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll until the command succeeds.
wait_for() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 1
  done
}

# sysctl_set KEY VALUE: set a kernel setting, remembering its value for teardown.sh.
sysctl_set() {
  local key=$1 value=$2 file=/proc/sys/${1//.//}
  mkdir -p "$E2E_RUN"
  [[ -f $E2E_RUN/sysctl.$key ]] || cat "$file" >"$E2E_RUN/sysctl.$key"
  echo "$value" >"$file"
}

# Remember the iptables chain policies once, before the engine or the cluster
# changes them (dockerd sets FORWARD to DROP); teardown.sh puts them back.
save_iptables_policies() {
  mkdir -p "$E2E_RUN"
  [[ -f $E2E_RUN/iptables.policies ]] && return 0
  for table in filter nat mangle raw; do
    iptables -t "$table" -S 2>/dev/null | awk -v t="$table" '$1 == "-P" {print t, $2, $3}'
  done >"$E2E_RUN/iptables.policies"
}
