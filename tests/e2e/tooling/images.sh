#!/usr/bin/env bash
# Local stand-ins for the images the project's files name but this machine
# cannot pull (no image registry), built from Debian packages and from what the
# project already resolves. Each is tagged with the name the project uses, so
# that Dockerfile, docker-compose.yml and k8s/ stay exactly as users run them.
#
#   python:3.11-slim-bookworm   Debian's python3 (3.11), with an offline wheelhouse
#                               built on the host (pip.conf: no index, find-links)
#   apache/kafka:<version>      Debian's Java 17 + the Kafka jars of hookstream's
#                               local broker, laid out and configured like the
#                               official image (/opt/kafka, KAFKA_* variables, uid 1000)
#   hookstream-e2e/jaeger:<v>   Jaeger v2 built from the Go module proxy
#   hookstream-e2e/coredns:<v>  the one-node cluster's DNS, built from the Go module proxy
#   hookstream-e2e/pause:1      the pod sandbox image of the one-node cluster
set -euo pipefail
shopt -s inherit_errexit
source "$(dirname "$0")/env.sh"
standins=$(cd "$(dirname "$0")/standins" && pwd)

build_dir=$E2E_HOME/build
mkdir -p "$build_dir" "$E2E_CACHE/rootfs"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# A Debian root filesystem with these packages, imported as an image.
# rootfs NAME PACKAGES
rootfs() {
  local name=$1 packages=$2 key tar image
  key=$(printf '%s %s' "$DEBIAN_SUITE" "$packages" | sha256sum | cut -c1-12)
  tar=$E2E_CACHE/rootfs/$name-$key.tar
  image=hookstream-e2e/$name:$key
  if ! image_exists "$image"; then
    if [[ ! -f $tar ]]; then
      log "mmdebstrap $name ($packages)"
      rm -rf "$tar.partial.tar"
      mmdebstrap --quiet --variant=minbase --include="$packages" "$DEBIAN_SUITE" "$tar.partial.tar"
      mv "$tar.partial.tar" "$tar"
    fi
    docker import "$tar" "$image" >/dev/null
  fi
  echo "$image"
}

# The wheels `pip install .` needs, built on the host once per pyproject.toml.
wheelhouse() {
  local key dir
  key=$("$E2E_ROOT/.venv/bin/python" -c 'import sys, tomllib; d = tomllib.load(open(sys.argv[1], "rb")); print(sorted(d["project"]["dependencies"]), d["build-system"]["requires"])' "$E2E_ROOT/pyproject.toml" | sha256sum | cut -c1-12)
  dir=$E2E_CACHE/wheelhouse-$key
  if [[ ! -f $dir/.complete ]]; then
    log "building wheels for pyproject.toml ($key)"
    rm -rf "$dir"
    "$E2E_ROOT/.venv/bin/python" -m pip wheel --quiet --wheel-dir "$dir" \
      "$E2E_ROOT" "setuptools>=69" wheel >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; exit 1; }
    rm -f "$dir"/hookstream-*.whl # the image builds the project itself
    touch "$dir/.complete"
  fi
  echo "$dir"
}

# The Kafka jars hookstream's local broker runs, resolved from Maven Central
# with its own pom.
kafka_libs() {
  local version=$1 pom dir
  dir=$E2E_ROOT/.hookstream/kafka/dist/$version/libs
  if [[ ! -f $dir/.complete ]]; then
    pom=$(find "$E2E_ROOT/hookstream" -name pom.xml -path '*broker*' | head -1)
    log "resolving Kafka $version with Maven ($pom)"
    mkdir -p "$(dirname "$dir")"
    cp "$pom" "$(dirname "$dir")/pom.xml"
    rm -rf "$dir.partial"
    mvn -q -B -f "$(dirname "$dir")/pom.xml" "-Dkafka.version=$version" \
      dependency:copy-dependencies "-DoutputDirectory=$dir.partial" >&2
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
    echo "$version" >"$dir/.complete"
  fi
  echo "$dir"
}

# docker build of a context dir under .hookstream/e2e/build.
# build TAG CONTEXT [build args...]
build() {
  local tag=$1 context=$2
  shift 2
  docker build --quiet --tag "$tag" "$@" "$context" >/dev/null
  rm -rf "$context"
  log "image $tag ready"
}

python_standin() {
  local base wheels ctx tag
  tag=$(sed -nE 's/^ARG PYTHON_IMAGE=(.*)$/\1/p' "$E2E_ROOT/Dockerfile")
  base=$(rootfs debian-python "ca-certificates,passwd,python3,python3-venv,python-is-python3")
  wheels=$(wheelhouse)
  ctx=$build_dir/python
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp -al "$wheels" "$ctx/wheelhouse"
  cp "$standins/python.Dockerfile" "$ctx/Dockerfile"
  build "$tag" "$ctx" --build-arg "BASE=$base"
}

kafka_standin() {
  local tag version libs base ctx
  tag=$(sed -nE 's/^ *image: (apache\/kafka:[^ ]+)$/\1/p' "$E2E_ROOT/docker-compose.yml" | head -1)
  version=${tag#apache/kafka:}
  pom_version=$(sed -nE 's:.*<kafka.version>(.*)</kafka.version>.*:\1:p' \
    "$(find "$E2E_ROOT/hookstream" -name pom.xml -path '*broker*' | head -1)")
  if [[ $version != "$pom_version" ]]; then
    log "docker-compose.yml runs $tag but the local broker resolves Kafka $pom_version"
    return 1
  fi
  libs=$(kafka_libs "$version")
  base=$(rootfs debian-java "ca-certificates,openjdk-17-jre-headless")
  ctx=$build_dir/kafka
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp -al "$libs" "$ctx/libs"
  rm -f "$ctx/libs/.complete"
  cp -r "$standins/kafka/." "$ctx/"
  build "$tag" "$ctx" --build-arg "BASE=$base"
}

jaeger_standin() {
  local base ctx
  base=$(rootfs debian-python "ca-certificates,passwd,python3,python3-venv,python-is-python3")
  ctx=$build_dir/jaeger
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$JAEGER_BIN/jaeger" "$ctx/jaeger"
  cp "$standins/jaeger.Dockerfile" "$ctx/Dockerfile"
  build "hookstream-e2e/jaeger:$JAEGER_VERSION" "$ctx" --build-arg "BASE=$base"
}

coredns_standin() {
  local base ctx
  base=$(rootfs debian-python "ca-certificates,passwd,python3,python3-venv,python-is-python3")
  ctx=$build_dir/coredns
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$COREDNS_BIN/coredns" "$ctx/coredns"
  printf 'ARG BASE\nFROM ${BASE}\nCOPY coredns /usr/local/bin/coredns\nUSER 10001:10001\nENTRYPOINT ["/usr/local/bin/coredns"]\n' >"$ctx/Dockerfile"
  build "hookstream-e2e/coredns:$COREDNS_VERSION" "$ctx" --build-arg "BASE=$base"
}

pause_image() {
  image_exists hookstream-e2e/pause:1 && return 0
  local ctx=$build_dir/pause
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$PAUSE_BIN/pause" "$ctx/pause"
  tar -C "$ctx" -cf "$ctx/rootfs.tar" pause
  docker import --change 'ENTRYPOINT ["/pause"]' "$ctx/rootfs.tar" hookstream-e2e/pause:1 >/dev/null
  log "image hookstream-e2e/pause:1 ready"
}

case ${1:-all} in
python) python_standin ;;
kafka) kafka_standin ;;
jaeger) jaeger_standin ;;
coredns) coredns_standin ;;
pause) pause_image ;;
all) python_standin && kafka_standin && jaeger_standin && coredns_standin && pause_image ;;
*) echo "usage: $0 [python|kafka|jaeger|coredns|pause|all]" >&2; exit 2 ;;
esac
