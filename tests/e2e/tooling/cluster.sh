#!/usr/bin/env bash
# start|stop a one-node Kubernetes of the checks' own, built from the Go module
# proxy (build-go.sh): etcd (Debian), kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet on containerd (Debian) with the bridge CNI plugin
# (Debian), kube-proxy in iptables mode, and kube-router's network policy
# controller, so that NetworkPolicies are enforced. State lives under /run/hookstream-e2e/k8s
# and is removed by stop, with the interfaces and iptables rules it added.
#
#   cluster.sh start        returns when the node is Ready
#   cluster.sh load IMAGE   copies an image from the Docker engine into containerd
#   cluster.sh stop
set -euo pipefail
source "$(dirname "$0")/env.sh"

dir=$E2E_RUN/k8s
pki=$dir/pki
logs=$dir/logs
containerd_sock=$dir/containerd/containerd.sock
API=https://$NODE_IP:6443
ETCD_PORT=12379

pid_of() { cat "$dir/$1.pid" 2>/dev/null || true; }
alive() { local pid; pid=$(pid_of "$1"); [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }

# daemon NAME COMMAND...: run in the background, log and pid under $dir.
daemon() {
  local name=$1
  shift
  if alive "$name"; then return 0; fi
  nohup "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
}

# cert NAME SUBJECT [SANS]: a key and a certificate signed by the cluster CA.
cert() {
  local name=$1 subject=$2 sans=${3:-}
  [[ -f $pki/$name.crt ]] && return 0
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [[ -z $sans ]] || echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 2 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
}

kubeconfig() { # NAME CERT
  local file=$dir/$1.kubeconfig
  [[ -f $file ]] && return 0
  cat >"$file" <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: hookstream-e2e
    cluster: {server: "$API", certificate-authority: "$pki/ca.crt"}
users:
  - name: $2
    user: {client-certificate: "$pki/$2.crt", client-key: "$pki/$2.key"}
contexts:
  - name: hookstream-e2e
    context: {cluster: hookstream-e2e, user: $2}
current-context: hookstream-e2e
YAML
}

start() {
  for bin in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    [[ -x $K8S_BIN/$bin ]] || { log "missing $K8S_BIN/$bin: run build-go.sh kubernetes"; exit 1; }
  done
  [[ -x $KUBE_ROUTER_BIN/kube-router ]] || { log "missing $KUBE_ROUTER_BIN/kube-router"; exit 1; }
  mkdir -p "$dir" "$pki" "$logs" "$dir/cni/net.d" "$dir/pv"

  save_iptables_policies
  sysctl_set net.ipv4.ip_forward 1
  sysctl_set net.bridge.bridge-nf-call-iptables 1

  # The node's address, on an interface of its own (the kubelet refuses a
  # loopback address; this kernel has no dummy links, so an empty bridge).
  if ! ip link show "$NODE_IFACE" >/dev/null 2>&1; then
    ip link add "$NODE_IFACE" type bridge
    ip addr add "$NODE_IP/32" dev "$NODE_IFACE"
  fi
  ip link set "$NODE_IFACE" up

  if [[ ! -f $pki/ca.crt ]]; then
    openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=hookstream-e2e-ca" -days 2 \
      -out "$pki/ca.crt" 2>/dev/null
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  fi
  local service_ip=${SERVICE_CIDR%.0/*}.1
  cert apiserver "/CN=kube-apiserver" \
    "IP:$NODE_IP,IP:$service_ip,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
  cert admin "/O=system:masters/CN=hookstream-e2e-admin"
  cert node "/O=system:nodes/CN=system:node:$NODE_NAME"
  cert kubelet "/CN=$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME"
  kubeconfig admin admin
  kubeconfig node node

  log "starting etcd"
  daemon etcd etcd --name hookstream-e2e --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
    --initial-cluster hookstream-e2e=http://127.0.0.1:12380 --quota-backend-bytes 2147483648
  log "starting kube-apiserver"
  daemon kube-apiserver kube-apiserver \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --client-ca-file "$pki/ca.crt" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --profiling=false
  wait_for 120 "the API server" kubectl get --raw /readyz

  log "starting controller manager and scheduler"
  daemon kube-controller-manager kube-controller-manager \
    --kubeconfig "$dir/admin.kubeconfig" --leader-elect=false \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials --controllers '*,-nodeipam' \
    --bind-address 127.0.0.1 --secure-port 10257
  daemon kube-scheduler kube-scheduler \
    --kubeconfig "$dir/admin.kubeconfig" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port 10259

  log "starting containerd"
  mkdir -p "$dir/containerd"
  cat >"$dir/containerd/config.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
[grpc]
  address = "$containerd_sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/hookstream-e2e/pause:1"
  # The machine lacks CAP_SYS_RESOURCE: never raise a container's oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
  # firewall: accept the pods' traffic in FORWARD, whose policy the Docker
  # engine sets to DROP (bridged packets pass iptables: bridge-nf-call-iptables).
  cat >"$dir/cni/net.d/10-hookstream-e2e.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "hookstream-e2e",
  "plugins": [
    {
      "type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": true,
      "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
               "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$dir/cni/ipam"}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall", "backend": "iptables"}
  ]
}
JSON
  daemon containerd containerd --config "$dir/containerd/config.toml"
  wait_for 60 "containerd" ctr --address "$containerd_sock" version

  log "starting kubelet"
  cat >"$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$pki/kubelet.crt"
tlsPrivateKeyFile: "$pki/kubelet.key"
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$containerd_sock
clusterDomain: cluster.local
clusterDNS: [${SERVICE_CIDR%.0/*}.10]
podCIDR: $POD_CIDR
failSwapOn: false
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
maxPods: 60
YAML
  daemon kubelet kubelet --config "$dir/kubelet.yaml" --kubeconfig "$dir/node.kubeconfig" \
    --root-dir "$dir/kubelet" --node-ip "$NODE_IP" --hostname-override "$NODE_NAME"
  log "starting kube-proxy"
  daemon kube-proxy kube-proxy --kubeconfig "$dir/admin.kubeconfig" --proxy-mode iptables \
    --cluster-cidr "$POD_CIDR" --hostname-override "$NODE_NAME" \
    --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 \
    --conntrack-tcp-timeout-close-wait 0 \
    --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address "$NODE_IP:10256"
  wait_for 120 "node $NODE_NAME to be Ready" \
    kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
  # The node's pod range, which the policy controller reads from the Node.
  if [[ -z $(kubectl get node "$NODE_NAME" -o jsonpath='{.spec.podCIDR}') ]]; then
    kubectl patch node "$NODE_NAME" --type merge \
      -p "{\"spec\": {\"podCIDR\": \"$POD_CIDR\", \"podCIDRs\": [\"$POD_CIDR\"]}}" >/dev/null
  fi
  log "starting kube-router (network policies)"
  daemon kube-router "$KUBE_ROUTER_BIN/kube-router" --kubeconfig "$dir/admin.kubeconfig" \
    --hostname-override "$NODE_NAME" --run-firewall=true --run-router=false \
    --run-service-proxy=false --enable-cni=false --health-port 0 --metrics-port 0
  wait_for 60 "kube-router's policy chains" iptables -S KUBE-ROUTER-FORWARD

  # Volumes for the claims of StatefulSets: local PersistentVolumes on the node.
  for n in 0 1 2 3; do
    mkdir -p "$dir/pv/$n"
  done
  kubectl apply -f - >/dev/null <<YAML
$(for n in 0 1 2 3; do cat <<PV
apiVersion: v1
kind: PersistentVolume
metadata: {name: hookstream-e2e-$n}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  local: {path: "$dir/pv/$n"}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}
---
PV
done)
YAML
  log "node $NODE_NAME is Ready ($KUBERNETES_VERSION)"
}

load() { # IMAGE...: from the Docker engine into the cluster's containerd
  for image in "$@"; do
    docker save "$image" | ctr --address "$containerd_sock" -n k8s.io images import --all-platforms - >/dev/null
    log "loaded $image into the cluster"
  done
}

stop() {
  [[ -d $dir ]] || return 0
  log "stopping the cluster"
  for name in kube-router kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do
    local pid; pid=$(pid_of "$name")
    [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  done
  # Pods: stop their containers and sandboxes (the CNI plugin releases their
  # addresses and rules), then containerd and its shims.
  if alive containerd; then
    for ns in k8s.io; do
      for task in $(ctr --address "$containerd_sock" -n "$ns" tasks ls -q 2>/dev/null); do
        ctr --address "$containerd_sock" -n "$ns" tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
      done
    done
    sleep 2
    kill "$(pid_of containerd)" 2>/dev/null || true
  fi
  for name in kube-router kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do
    local pid; pid=$(pid_of "$name")
    for _ in $(seq 20); do [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    [[ -z $pid ]] || kill -9 "$pid" 2>/dev/null || true
  done
  # Shims started by our containerd (their command line names its socket).
  for pid in $(pgrep -f "containerd-shim.*-address $containerd_sock" || true); do
    kill -9 "$pid" 2>/dev/null || true
  done
  "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  [[ ! -x $KUBE_ROUTER_BIN/kube-router ]] || "$KUBE_ROUTER_BIN/kube-router" --cleanup-config >/dev/null 2>&1 || true
  # Mounts of pod volumes, sandboxes and snapshots, deepest first.
  grep -o " $dir[^ ]*" /proc/self/mounts | sort -r | while read -r mnt; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  done
  for netns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do
    ip netns delete "$netns" 2>/dev/null || true
  done
  ! ip link show "$POD_BRIDGE" >/dev/null 2>&1 || ip link delete "$POD_BRIDGE"
  ! ip link show "$NODE_IFACE" >/dev/null 2>&1 || ip link delete "$NODE_IFACE"
  rm -rf "$dir"
}

case ${1:-} in
start) start ;;
load) shift; load "$@" ;;
stop) stop ;;
*) echo "usage: $0 start|load IMAGE...|stop" >&2; exit 2 ;;
esac
