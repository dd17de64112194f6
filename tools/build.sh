#!/usr/bin/env bash
# Builds the local control plane's binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from the Go modules pinned in tools/*/go.mod and go.sum.
#
# Each family is built into a cache outside the repository, in a folder named after the hash
# of its go.mod and go.sum, so a fresh clone on a warm machine reuses the build and a change of
# pins builds anew. Prints the bin folder on stdout when done; progress goes to stderr.
#
#   tools/build.sh            build what is missing, print the bin folder
#   tools/build.sh --print    print the bin folder without building
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${AIAPP_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aiapp-tools}
bin_dir=$cache_root/bin
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

k8s_version=v1.37.2
k8s_ldflags="-s -w \
  -X k8s.io/component-base/version.gitVersion=$k8s_version \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=37 \
  -X k8s.io/component-base/version.gitTreeState=clean \
  -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"

# The key of a family: its pins, the Go version, and the flags and packages of its build, so
# that editing this script (say, to add a family) rebuilds only what it changes.
family_key() {
  local family=$1
  shift
  { cat "$here/$family/go.mod" "$here/$family/go.sum"; go version; echo "$*"; } \
    | sha256sum | cut -c1-16
}

# Builds one family's commands into the cache unless a build with the same key is there, then
# links them into the shared bin folder that the harness reads.
build_family() {
  local family=$1 ldflags=$2 lock
  shift 2
  local out
  out="$cache_root/$family-$(family_key "$family" "$ldflags" "$@")"
  # Two builds at once (a test run and a demo, say) must not share a half-built folder.
  mkdir -p "$cache_root"
  exec {lock}>"$out.lock"
  flock "$lock"
  if [[ -f $out/.complete ]]; then
    echo "tools: $family is built ($out)" >&2
  else
    echo "tools: building $family from pinned Go modules (a cold build takes minutes)..." >&2
    local started=$SECONDS
    rm -rf "$out.partial" && mkdir -p "$out.partial"
    echo "tools:   go build $*" >&2
    (cd "$here/$family" && go build -trimpath -ldflags "$ldflags" -o "$out.partial/" "$@")
    # etcd's main package is go.etcd.io/etcd/server/v3, which go names "server".
    [[ -f $out.partial/server ]] && mv "$out.partial/server" "$out.partial/etcd"
    touch "$out.partial/.complete"
    rm -rf "$out" && mv "$out.partial" "$out"
    echo "tools: built $family in $((SECONDS - started))s" >&2
    # Builds of older pins are not used again; they take hundreds of MiB.
    find "$cache_root" -maxdepth 1 -name "$family-*" ! -name "$(basename "$out")*" \
      -exec rm -rf {} +
  fi
  flock -u "$lock"
  exec {lock}>&-
  mkdir -p "$bin_dir"
  local binary
  for binary in "$out"/*; do
    ln -sfn "$binary" "$bin_dir/$(basename "$binary")"
  done
}

if [[ ${1:-} == --print ]]; then
  echo "$bin_dir"
  exit 0
fi

build_family etcd "-s -w" go.etcd.io/etcd/server/v3
build_family kwok "-s -w" sigs.k8s.io/kwok/cmd/kwok
build_family k8s "$k8s_ldflags" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl
build_family helm "-s -w -X helm.sh/helm/v4/internal/version.version=v4.3.2" helm.sh/helm/v4/cmd/helm
build_family flux "-s -w" github.com/fluxcd/source-controller github.com/fluxcd/kustomize-controller
echo "$bin_dir"
