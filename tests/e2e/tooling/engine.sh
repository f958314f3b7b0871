#!/usr/bin/env bash
# start|stop a Docker engine of the checks' own: dockerd with its own managed
# containerd, data root under .hookstream/e2e/docker (kept: it caches images
# and build layers), socket and exec root under /run/hookstream-e2e.
set -euo pipefail
source "$(dirname "$0")/env.sh"

docker_dir=$E2E_RUN/docker
pid_file=$docker_dir/dockerd.pid

running() { [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

case ${1:-} in
start)
  if running && docker info >/dev/null 2>&1; then exit 0; fi
  mkdir -p "$docker_dir" "$E2E_HOME/docker"
  save_iptables_policies
  sysctl_set net.ipv4.ip_forward 1
  log "starting dockerd (log: $docker_dir/dockerd.log)"
  # A bridge of its own (removed by stop), so that no docker0 is left behind.
  if ! ip link show "$DOCKER_BRIDGE" >/dev/null 2>&1; then
    ip link add "$DOCKER_BRIDGE" type bridge
    ip addr add "$DOCKER_BRIDGE_CIDR" dev "$DOCKER_BRIDGE"
  fi
  ip link set "$DOCKER_BRIDGE" up
  nohup dockerd \
    --host "$DOCKER_HOST" \
    --data-root "$E2E_HOME/docker" \
    --exec-root "$docker_dir/exec" \
    --pidfile "$pid_file" \
    --storage-driver overlay2 \
    --bridge "$DOCKER_BRIDGE" \
    --default-address-pool base=10.124.0.0/16,size=24 \
    --log-driver json-file --log-opt max-size=10m \
    >"$docker_dir/dockerd.log" 2>&1 </dev/null &
  wait_for 60 "dockerd to answer" docker info
  ;;
stop)
  if running; then
    pid=$(cat "$pid_file")
    # Containers first, so that the engine does not wait on each one.
    ids=$(docker ps -q 2>/dev/null || true)
    [[ -z $ids ]] || docker rm -f $ids >/dev/null 2>&1 || true
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$docker_dir"
  ! ip link show "$DOCKER_BRIDGE" >/dev/null 2>&1 || ip link delete "$DOCKER_BRIDGE"
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
