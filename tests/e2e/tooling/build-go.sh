#!/usr/bin/env bash
# Builds the Go programs the live checks run, from the Go module proxy, into a
# directory keyed by version; a second run with the same version does nothing.
#
#   build-go.sh kubernetes VERSION DEST   kube-apiserver, -scheduler, -controller-manager,
#                                         kubelet, kube-proxy, kubectl
#   build-go.sh jaeger VERSION DEST       Jaeger v2 (module tags v1.x), cmd/jaeger
#   build-go.sh coredns VERSION DEST      CoreDNS, the cluster's DNS server
#   build-go.sh kube-router VERSION DEST  kube-router, its network policy controller only
#   build-go.sh pause DEST                a pause program for the pod sandbox image
#
# `go install pkg@version` refuses modules with replace directives (Kubernetes,
# Jaeger), so each module is downloaded, copied somewhere writable and built
# inside.
set -euo pipefail

what=$1
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=auto CGO_ENABLED=0

module_dir() { # module@version -> a writable copy of its source
  local src work
  src=$(go mod download -json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  work=$(mktemp -d "${TMPDIR:-/tmp}/hookstream-e2e-src.XXXXXX")
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  echo "$work"
}

finish() { # dest: mark the build complete
  touch "$1/.complete"
  echo "built into $1"
}

case $what in
kubernetes)
  version=$2 dest=$3
  [[ -e $dest/.complete ]] && exit 0
  staging=v0.${version#v1.}
  src=$(module_dir "k8s.io/kubernetes@$version")
  trap 'rm -rf "$src"' EXIT
  cd "$src"
  rm -rf vendor go.work go.work.sum
  # The staging modules are replaced by ./staging/...; pin their published
  # versions instead, so that the module builds on its own.
  edits=()
  while read -r mod; do
    edits+=("-dropreplace=$mod" "-require=$mod@$staging")
  done < <(go mod edit -json | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])')
  go mod edit "${edits[@]}"
  export GONOSUMDB=k8s.io GOWORK=off
  mkdir -p "$dest"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$version")"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    echo "building $cmd $version"
    go build -trimpath -ldflags "$ldflags" -o "$dest/$cmd" "./cmd/$cmd"
  done
  finish "$dest"
  ;;
jaeger)
  version=$2 dest=$3
  [[ -e $dest/.complete ]] && exit 0
  src=$(module_dir "github.com/jaegertracing/jaeger@$version")
  trap 'rm -rf "$src"' EXIT
  cd "$src"
  mkdir -p "$dest"
  go build -trimpath -ldflags "-s -w" -o "$dest/jaeger" ./cmd/jaeger
  finish "$dest"
  ;;
coredns)
  version=$2 dest=$3
  [[ -e $dest/.complete ]] && exit 0
  src=$(module_dir "github.com/coredns/coredns@$version")
  trap 'rm -rf "$src"' EXIT
  cd "$src"
  mkdir -p "$dest"
  go build -trimpath -ldflags "-s -w" -o "$dest/coredns" .
  finish "$dest"
  ;;
kube-router)
  version=$2 dest=$3
  [[ -e $dest/.complete ]] && exit 0
  src=$(module_dir "github.com/cloudnativelabs/kube-router/v2@$version")
  trap 'rm -rf "$src"' EXIT
  cd "$src"
  mkdir -p "$dest"
  go build -trimpath -ldflags "-s -w" -o "$dest/kube-router" ./cmd/kube-router
  finish "$dest"
  ;;
pause)
  dest=$2
  [[ -e $dest/.complete ]] && exit 0
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  # What the pod sandbox needs: hold the namespaces, reap children, exit on TERM.
  cat >"$src/main.go" <<'GO'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			for {
				pid, _ := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
GO
  (cd "$src" && go mod init pause >/dev/null 2>&1 && go build -trimpath -ldflags "-s -w" -o pause .)
  mkdir -p "$dest"
  mv "$src/pause" "$dest/pause"
  finish "$dest"
  ;;
*)
  echo "usage: $0 kubernetes|jaeger|coredns|kube-router VERSION DEST | pause DEST" >&2
  exit 2
  ;;
esac
