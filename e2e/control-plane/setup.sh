#!/usr/bin/env bash
# Builds etcd and kube-apiserver from Go modules (the envtest convention: a
# folder holding `etcd` and `kube-apiserver`) and prints that folder on stdout.
#
# No Docker engine and no binary downloads are possible here, so the binaries
# come from source through the Go module proxy. The build is cached: a second
# run prints the folder at once. When KUBEBUILDER_ASSETS is set it is used as is.
#
# Progress goes to stderr; only the folder goes to stdout, so callers can do
#   export KUBEBUILDER_ASSETS="$(e2e/control-plane/setup.sh)"
set -euo pipefail

K8S_VERSION="${AGENTAUTH_K8S_VERSION:-1.35.4}"
# The etcd release that Kubernetes ${K8S_VERSION} itself requires in its go.mod.
ETCD_VERSION="${AGENTAUTH_ETCD_VERSION:-3.6.5}"

log() { printf '[control-plane] %s\n' "$*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  for bin in etcd kube-apiserver; do
    if [[ ! -x "${KUBEBUILDER_ASSETS}/${bin}" ]]; then
      log "KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS} has no executable ${bin}"
      exit 1
    fi
  done
  printf '%s\n' "${KUBEBUILDER_ASSETS}"
  exit 0
fi

cache_root="${AGENTAUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentauth}"
out="${cache_root}/control-plane/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"
if [[ -x "${out}/etcd" && -x "${out}/kube-apiserver" ]]; then
  printf '%s\n' "${out}"
  exit 0
fi

mkdir -p "${out}"
# Test binaries run in parallel (cargo nextest) may all arrive here on a cold
# cache: one builds, the others wait for it and then take the fast path.
if command -v flock >/dev/null; then
  exec 9>"${cache_root}/control-plane/.build.lock"
  flock 9
  if [[ -x "${out}/etcd" && -x "${out}/kube-apiserver" ]]; then
    printf '%s\n' "${out}"
    exit 0
  fi
fi
command -v go >/dev/null || { log "go is required to build the control plane"; exit 1; }
work="$(mktemp -d "${cache_root}/control-plane/build.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

build_etcd() {
  log "building etcd v${ETCD_VERSION} (first run only) ..."
  mkdir -p "${work}/etcd"
  cd "${work}/etcd"
  cat > main.go <<'GO'
// Command etcd is etcd's own server entry point, built as a Go module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod init agentauth.dev/control-plane/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >&2
  go mod tidy >&2
  go build -trimpath -ldflags='-s -w' -o "${out}/etcd.tmp" . >&2
  mv "${out}/etcd.tmp" "${out}/etcd"
  log "etcd built"
}

build_apiserver() {
  log "building kube-apiserver v${K8S_VERSION} (first run only; several minutes on 2 cores) ..."
  mkdir -p "${work}/apiserver"
  cd "${work}/apiserver"
  cat > main.go <<'GO'
// Command kube-apiserver is Kubernetes' own apiserver, built as a Go module.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
GO
  go mod init agentauth.dev/control-plane/apiserver >/dev/null 2>&1
  # k8s.io/kubernetes points its staging modules at ./staging, which does not
  # exist in the module zip: pin each to its published v0.x release instead.
  local kmod staging_version
  kmod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging_version="v0.${K8S_VERSION#1.}"
  grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging/' "${kmod}" | awk '{print $1}' | while read -r m; do
    go mod edit -replace "${m}=${m}@${staging_version}"
  done
  go mod edit -require "k8s.io/kubernetes@v${K8S_VERSION}"
  go mod tidy >&2
  # Stamp the version the way Kubernetes' own build does (hack/lib/version.sh);
  # without it /version reports v0.0.0-master and clients see a bogus version.
  local v="k8s.io/component-base/version" minor="${K8S_VERSION#*.}"
  minor="${minor%%.*}"
  go build -trimpath \
    -ldflags="-s -w -X ${v}.gitVersion=v${K8S_VERSION} -X ${v}.gitMajor=${K8S_VERSION%%.*} -X ${v}.gitMinor=${minor} -X ${v}.gitTreeState=clean" \
    -o "${out}/kube-apiserver.tmp" . >&2
  mv "${out}/kube-apiserver.tmp" "${out}/kube-apiserver"
  log "kube-apiserver built"
}

start=$(date +%s)
[[ -x "${out}/etcd" ]] || build_etcd
[[ -x "${out}/kube-apiserver" ]] || build_apiserver
log "control plane ready in $(( $(date +%s) - start ))s: ${out}"
printf '%s\n' "${out}"
