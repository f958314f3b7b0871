#!/usr/bin/env bash
# Leaves the machine as the checks found it: stops the cluster and the Docker
# engine they started, removes the iptables rules and chains those added,
# restores the kernel settings they changed. Safe to run at any time, twice.
set -uo pipefail
source "$(dirname "$0")/env.sh"
tooling=$(dirname "$0")

"$tooling/cluster.sh" stop
"$tooling/engine.sh" stop

# Rules that jump to, live in or match what the checks created: Docker's and
# kube-proxy's chains, the bridge plugin's CNI-* chains, the checks' bridges
# and address ranges. Everything else in each table is restored as it was.
ours='(DOCKER|KUBE-|CNI-|hs-docker0|hs-cni0|10\.244\.0\.|10\.124\.|10\.125\.0\.)'
if command -v iptables-save >/dev/null; then
  for table in filter nat mangle raw; do
    saved=$(iptables-save -t "$table" 2>/dev/null) || continue
    grep -qE "$ours" <<<"$saved" || continue
    grep -vE "^(:|-A |-I )?[^ ]*$ours|^-A [^ ]+ .*$ours" <<<"$saved" | iptables-restore -T "$table" \
      || log "could not clean iptables table $table"
  done
fi

# kube-router's address sets, once no rule refers to them.
if command -v ipset >/dev/null; then
  for set in $(ipset list -n 2>/dev/null | grep -E '^(inet6:)?KUBE-'); do
    ipset destroy "$set" 2>/dev/null || log "could not destroy ipset $set"
  done
fi

if [[ -f $E2E_RUN/iptables.policies ]]; then
  while read -r table chain policy; do
    iptables -t "$table" -P "$chain" "$policy" 2>/dev/null || true
  done <"$E2E_RUN/iptables.policies"
fi

for file in "$E2E_RUN"/sysctl.*; do
  [[ -f $file ]] || continue
  key=${file##*/sysctl.}
  cat "$file" >"/proc/sys/${key//.//}" 2>/dev/null || true
done
rm -rf "$E2E_RUN"
