#!/usr/bin/env bash
# Builds what a kubelet-less cluster needs on top of the control plane
# (e2e/control-plane/setup.sh): kube-controller-manager and kube-scheduler from
# the same Kubernetes release as the apiserver, and kwok, which plays the
# kubelets (fake Nodes, Pods marked Running/Ready without any container).
# Prints the folder holding `kube-controller-manager`, `kube-scheduler`, `kwok`
# and `kwok-stages.yaml` (kwok's own default lifecycle stages, for its
# --config) on stdout; progress goes to stderr:
#
#   export AGENTAUTH_SIMULATOR_BIN="$(e2e/control-plane/setup-simulator.sh)"
#
# No Docker engine and no binary downloads are possible here, so everything
# comes from source through the Go module proxy, once: a second run prints the
# folder at once. When AGENTAUTH_SIMULATOR_BIN is set it is used as is.
set -euo pipefail

K8S_VERSION="${AGENTAUTH_K8S_VERSION:-1.35.4}"
# The newest kwok on the module proxy that builds with this machine's Go.
KWOK_VERSION="${AGENTAUTH_KWOK_VERSION:-0.8.0}"
BINARIES=(kube-controller-manager kube-scheduler kwok)
STAGES=kwok-stages.yaml

log() { printf '[simulator] %s\n' "$*" >&2; }

have_all() {
  local bin
  for bin in "${BINARIES[@]}"; do
    [[ -x "$1/${bin}" ]] || return 1
  done
  [[ -f "$1/${STAGES}" ]]
}

if [[ -n "${AGENTAUTH_SIMULATOR_BIN:-}" ]]; then
  if ! have_all "${AGENTAUTH_SIMULATOR_BIN}"; then
    log "AGENTAUTH_SIMULATOR_BIN=${AGENTAUTH_SIMULATOR_BIN} lacks one of: ${BINARIES[*]} ${STAGES}"
    exit 1
  fi
  printf '%s\n' "${AGENTAUTH_SIMULATOR_BIN}"
  exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${AGENTAUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentauth}"
out="${cache_root}/simulator/k8s-${K8S_VERSION}-kwok-${KWOK_VERSION}"
if have_all "${out}"; then
  printf '%s\n' "${out}"
  exit 0
fi

mkdir -p "${out}"
# Test binaries started together on a cold cache: one builds, the others wait
# for it and then take the fast path.
exec 9>"${cache_root}/simulator/.build.lock"
flock 9
if have_all "${out}"; then
  printf '%s\n' "${out}"
  exit 0
fi
command -v go >/dev/null || { log "go is required to build the simulator"; exit 1; }
work="$(mktemp -d "${cache_root}/simulator/build.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

# One module holding both Kubernetes commands, so their shared packages are
# resolved and compiled once (and the apiserver build's Go cache is reused).
build_kube() {
  log "building kube-controller-manager and kube-scheduler v${K8S_VERSION} (first run only; minutes on 2 cores) ..."
  mkdir -p "${work}/kube/kube-controller-manager" "${work}/kube/kube-scheduler"
  cd "${work}/kube"
  cat > kube-controller-manager/main.go <<'GO'
// Command kube-controller-manager is Kubernetes' own, built as a Go module.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() { os.Exit(cli.Run(app.NewControllerManagerCommand())) }
GO
  cat > kube-scheduler/main.go <<'GO'
// Command kube-scheduler is Kubernetes' own, built as a Go module.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() { os.Exit(cli.Run(app.NewSchedulerCommand())) }
GO
  go mod init agentauth.dev/control-plane/simulator >/dev/null 2>&1
  # k8s.io/kubernetes points its staging modules at ./staging, which does not
  # exist in the module zip: pin each to its published v0.x release instead
  # (the same trick as setup.sh).
  local kmod staging_version
  kmod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging_version="v0.${K8S_VERSION#1.}"
  grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging/' "${kmod}" | awk '{print $1}' | while read -r m; do
    go mod edit -replace "${m}=${m}@${staging_version}"
  done
  go mod edit -require "k8s.io/kubernetes@v${K8S_VERSION}"
  go mod tidy >&2
  # Stamp the version like Kubernetes' own build (hack/lib/version.sh).
  local v="k8s.io/component-base/version" minor="${K8S_VERSION#*.}" bin
  minor="${minor%%.*}"
  for bin in kube-controller-manager kube-scheduler; do
    [[ -x "${out}/${bin}" ]] && continue
    go build -trimpath \
      -ldflags="-s -w -X ${v}.gitVersion=v${K8S_VERSION} -X ${v}.gitMajor=${K8S_VERSION%%.*} -X ${v}.gitMinor=${minor} -X ${v}.gitTreeState=clean" \
      -o "${out}/${bin}.tmp" "./${bin}" >&2
    mv "${out}/${bin}.tmp" "${out}/${bin}"
    log "${bin} built"
  done
}

build_kwok() {
  log "building kwok v${KWOK_VERSION} (first run only) ..."
  local bin
  bin="$("${here}/../../scripts/go-tool.sh" kwok sigs.k8s.io/kwok "v${KWOK_VERSION}" sigs.k8s.io/kwok/cmd/kwok \
    -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v${KWOK_VERSION}")"
  ln -sf "${bin}" "${out}/kwok"
}

# kwok does nothing without stages. These are the ones kwokctl clusters run
# by default (kustomize/stage/fast in kwok's module): Nodes become Ready and
# keep a Lease, Pods become Running/Ready at once, finish, and go when deleted.
write_kwok_stages() {
  local dir file
  dir="$(cd "${work}" && go mod download -json "sigs.k8s.io/kwok@v${KWOK_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  {
    for file in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      printf -- '---\n# sigs.k8s.io/kwok@v%s kustomize/stage/%s\n' "${KWOK_VERSION}" "${file}"
      cat "${dir}/kustomize/stage/${file}"
    done
  } > "${out}/${STAGES}.tmp"
  mv "${out}/${STAGES}.tmp" "${out}/${STAGES}"
  log "kwok stages written"
}

start=$(date +%s)
[[ -x "${out}/kube-controller-manager" && -x "${out}/kube-scheduler" ]] || build_kube
[[ -x "${out}/kwok" ]] || build_kwok
[[ -f "${out}/${STAGES}" ]] || write_kwok_stages
log "simulator ready in $(( $(date +%s) - start ))s: ${out}"
printf '%s\n' "${out}"
