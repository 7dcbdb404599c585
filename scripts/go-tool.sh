#!/usr/bin/env bash
# Builds one Go program from the Go module proxy, once, into the cache, and
# prints the path of the binary on stdout (progress goes to stderr):
#
#   scripts/go-tool.sh NAME MODULE VERSION PACKAGE [-ldflags ...]
#   helm="$(scripts/go-tool.sh helm helm.sh/helm/v4 v4.3.2 helm.sh/helm/v4/cmd/helm)"
#
# No binary downloads are possible here, so the tools the tests run (helm,
# promtool, ...) come from source, the way the control plane does
# (e2e/control-plane/setup.sh). A second call prints the cached path at once.
set -euo pipefail

name="$1" module="$2" version="$3" package="$4"
shift 4
cache_root="${AGENTAUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentauth}"
out="${cache_root}/tools/${name}-${version}"
if [[ -x "${out}/${name}" ]]; then
  printf '%s\n' "${out}/${name}"
  exit 0
fi
mkdir -p "${out}"
# Test binaries started together on a cold cache: one builds, the others wait.
exec 9>"${out}/.build.lock"
flock 9
if [[ -x "${out}/${name}" ]]; then
  printf '%s\n' "${out}/${name}"
  exit 0
fi
command -v go >/dev/null || { echo "go is required to build ${name}" >&2; exit 1; }
work="$(mktemp -d "${out}/build.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
start=$(date +%s)
echo "[${name}] building ${module}@${version} (first run only) ..." >&2
cd "${work}"
export GOFLAGS="-mod=mod" CGO_ENABLED=0
go mod init "agentauth.dev/tools/${name}" >/dev/null 2>&1
go get "${module}@${version}" >&2
go build -trimpath "$@" -o "${out}/${name}.tmp" "${package}" >&2
mv "${out}/${name}.tmp" "${out}/${name}"
echo "[${name}] built in $(( $(date +%s) - start ))s: ${out}/${name}" >&2
printf '%s\n' "${out}/${name}"
