# Installers shared by ./test.sh and ./dev.sh: each checks first and is
# quick when the tool is already there. Source it from the repository root:
#
#   source scripts/deps.sh
#   as_root CMD...          # runs CMD as root (sudo unless already root)
#   ensure_openssl          # OpenSSL headers + pkg-config (webauthn-rs links OpenSSL)
#   ensure_redis            # redis-server on PATH (Debian package, via apt)
#   ensure_control_plane    # exports KUBEBUILDER_ASSETS (etcd + kube-apiserver)
#   ensure_chromium         # Debian's chromium (apt) for the approval UI's browser tests
#   ensure_node_modules     # approval-ui/node_modules from the lockfile (npm ci, cached)
#   ensure_promtool         # exports AGENTAUTH_PROMTOOL (Prometheus' promtool, Go modules)
#   go_local_tool DIR       # builds a Go program of this repository once, prints its path
#   ensure_helm             # exports AGENTAUTH_HELM (helm v4, Go modules)
#   ensure_simulator        # kube-controller-manager, kube-scheduler, kwok (the chart's pods)
#   ensure_openbao          # exports AGENTAUTH_OPENBAO (a Vault-API server, Go modules)
#   ensure_chaos_mesh_crds  # exports AGENTAUTH_CHAOS_MESH_CRDS (Chaos Mesh's CRD YAML, Go module proxy)

# Caches live outside the clone so a fresh clone rebuilds nothing that has
# not changed.
export AGENTAUTH_CACHE="${AGENTAUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentauth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$AGENTAUTH_CACHE/target}"
mkdir -p "$AGENTAUTH_CACHE"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# What building the workspace needs besides Rust: the approval API's passkey
# ceremonies (webauthn-rs) link OpenSSL.
ensure_openssl() {
  if ! pkg-config --exists openssl 2>/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config
  fi
}

# redis-server from the distribution (Debian/Ubuntu apt).
ensure_redis() {
  if ! command -v redis-server >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
  fi
  redis-server --version
}

# etcd + kube-apiserver, built once from Go modules (about 5 minutes on 2
# cores the first time, instant afterwards); exports KUBEBUILDER_ASSETS.
ensure_control_plane() {
  KUBEBUILDER_ASSETS="$(e2e/control-plane/setup.sh)"
  export KUBEBUILDER_ASSETS
  echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
}

# Debian's chromium for the approval UI's end-to-end tests (puppeteer-core
# drives it; no browser is downloaded). Exports AGENTAUTH_CHROMIUM.
ensure_chromium() {
  if ! command -v chromium >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  fi
  AGENTAUTH_CHROMIUM="$(command -v chromium)"
  export AGENTAUTH_CHROMIUM
  "$AGENTAUTH_CHROMIUM" --version 2>/dev/null | head -n 1
}

# approval-ui/node_modules exactly as package-lock.json says (npm ci), with
# npm's download cache outside the clone; skipped when node_modules already
# matches the lockfile (a stamp holds the lockfile's hash).
ensure_node_modules() {
  command -v npm >/dev/null || { echo "npm is required for the approval UI (Node 20+)"; return 1; }
  local ui=approval-ui stamp=approval-ui/node_modules/.agentauth-lock-sha256 want
  want="$(sha256sum "$ui/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    (cd "$ui" && npm ci --no-audit --no-fund --cache "$AGENTAUTH_CACHE/npm" --prefer-offline)
    echo "$want" >"$stamp"
  fi
  echo "node $(node --version), npm $(npm --version): $ui/node_modules matches package-lock.json"
}

# Prometheus' promtool, built once from Go modules (scripts/go-tool.sh; several
# minutes on 2 cores the first time, instant afterwards); exports
# AGENTAUTH_PROMTOOL. scripts/check-alerts.sh runs it on the alert rules.
# remove_all_sd leaves out the service-discovery plugins (cloud SDKs):
# checking and unit-testing rules needs none of them, and they are most of
# the build.
ensure_promtool() {
  local version=v0.316.0
  AGENTAUTH_PROMTOOL="$(scripts/go-tool.sh promtool github.com/prometheus/prometheus \
    "$version" github.com/prometheus/prometheus/cmd/promtool \
    -tags=remove_all_sd -ldflags="-s -w")"
  export AGENTAUTH_PROMTOOL
  echo "promtool $version: $AGENTAUTH_PROMTOOL"
}

# A Go program of this repository (a folder with go.mod, go.sum and its
# sources, e.g. scripts/dockerfile-check), built once per content of that
# folder into the cache; prints the binary's path on stdout (progress goes to
# stderr). The local counterpart of scripts/go-tool.sh: its dependencies come
# from the Go module proxy, checked against the folder's go.sum.
#
#   "$(go_local_tool scripts/dockerfile-check)" -root .
go_local_tool() {
  local dir="$1" name hash out
  name="$(basename "$dir")"
  hash="$(cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go | sha256sum | cut -c1-16)"
  out="$AGENTAUTH_CACHE/tools/$name-$hash"
  if [ ! -x "$out/$name" ]; then
    command -v go >/dev/null || { echo "go is required to build $name" >&2; return 1; }
    mkdir -p "$out"
    local start=$SECONDS
    echo "[$name] building $dir (first run after a change only) ..." >&2
    # -mod=readonly: go.sum is the pinned list of what may be downloaded.
    (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$out/$name.tmp" .) >&2 ||
      return 1
    mv "$out/$name.tmp" "$out/$name"
    echo "[$name] built in $((SECONDS - start))s" >&2
  fi
  printf '%s\n' "$out/$name"
}

# helm, built once from Go modules (helm.sh/helm/v4) into the cache; exports
# AGENTAUTH_HELM, which the chart tests (e2e/chart) use.
ensure_helm() {
  AGENTAUTH_HELM="$(scripts/go-tool.sh helm helm.sh/helm/v4 v4.3.2 helm.sh/helm/v4/cmd/helm -ldflags="-s -w")"
  export AGENTAUTH_HELM
  echo "helm: $("$AGENTAUTH_HELM" version --short 2>/dev/null) ($AGENTAUTH_HELM)"
}

# kube-controller-manager and kube-scheduler (the apiserver's release) and
# kwok, built once from Go modules (about 7 minutes on 2 cores the first time,
# instant afterwards); exports AGENTAUTH_SIMULATOR_BIN, the folder the chart's
# simulated-cluster test (e2e/chart/tests/pods.rs) runs them from.
ensure_simulator() {
  AGENTAUTH_SIMULATOR_BIN="$(e2e/control-plane/setup-simulator.sh)"
  export AGENTAUTH_SIMULATOR_BIN
  echo "AGENTAUTH_SIMULATOR_BIN=$AGENTAUTH_SIMULATOR_BIN"
}

# A Vault-API server for the Vault Transit signer's tests
# (signer/tests/vault_transit.rs, signer/tests/contract.rs), built once from
# Go modules into the cache; exports AGENTAUTH_OPENBAO, which the harness
# (e2e/testenv/src/openbao.rs) runs as a dev server.
#
# OpenBao would be the first choice, but the Go module proxy serves no
# version of github.com/openbao/openbao (its go.mod lacks the /v2 suffix its
# v2.x tags would need: v2.4.1 and v2.7.1, with and without +incompatible,
# and v2.3.2+incompatible are all refused), so this builds HashiCorp Vault at an
# exact version: the same Transit and Kubernetes-auth API (OpenBao forked
# Vault 1.14). `go install` refuses a main module with replace directives,
# so the module source is copied and built in place; its replaces that point
# at its own subfolders (api, sdk: nested modules the zip leaves out) are
# dropped for the published versions its go.mod requires, the others stay.
# No UI (the `ui` build tag is off). About 20 minutes on 2 busy cores the
# first time, instant afterwards.
ensure_openbao() {
  local module=github.com/hashicorp/vault version=v1.21.0 name=vault
  local out="$AGENTAUTH_CACHE/tools/$name-$version"
  if [ ! -x "$out/$name" ]; then
    command -v go >/dev/null || { echo "go is required to build $name" >&2; return 1; }
    mkdir -p "$out"
    (
      set -euo pipefail
      # Test binaries or shells started together on a cold cache: one builds.
      exec 9>"$out/.build.lock"
      flock 9
      [ -x "$out/$name" ] && exit 0
      start=$SECONDS
      echo "[$name] building $module@$version (first run only) ..." >&2
      src="$(go mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
      work="$(mktemp -d "$out/build.XXXXXX")"
      trap 'rm -rf "$work"' EXIT
      cp -r "$src"/. "$work"
      chmod -R u+w "$work"
      cd "$work"
      for local_module in $(sed -n 's#^replace \([^ ]*\) => \./.*#\1#p' go.mod); do
        go mod edit -dropreplace="$local_module"
      done
      GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/$name.tmp" . >&2
      mv "$out/$name.tmp" "$out/$name"
      echo "[$name] built in $((SECONDS - start))s: $out/$name" >&2
    ) || return 1
  fi
  AGENTAUTH_OPENBAO="$out/$name"
  export AGENTAUTH_OPENBAO
  echo "openbao (Vault API): $("$AGENTAUTH_OPENBAO" version 2>/dev/null) ($AGENTAUTH_OPENBAO)"
}

# Chaos Mesh's CRDs (PodChaos, NetworkChaos, TimeChaos, …), against which
# chaos/tests/chaos_mesh.rs validates the manifests of chaos/chaos-mesh/
# (server-side dry run, strict field validation). They come from the Go
# module proxy: its v2 tags lack the /v2 module suffix and are not served,
# so this is an exact pseudo-version of the master branch. Copied once into
# the cache; exports AGENTAUTH_CHAOS_MESH_CRDS (the folder of the YAML files).
ensure_chaos_mesh_crds() {
  local module=github.com/chaos-mesh/chaos-mesh version=v0.9.1-0.20260902003049-47411975a8cb
  local out="$AGENTAUTH_CACHE/tools/chaos-mesh-crds-$version"
  if ! ls "$out"/chaos-mesh.org_podchaos.yaml >/dev/null 2>&1; then
    command -v go >/dev/null || { echo "go is required to download the Chaos Mesh CRDs" >&2; return 1; }
    local src
    src="$(go mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
    [ -d "$src/config/crd/bases" ] || { echo "no config/crd/bases in $module@$version" >&2; return 1; }
    mkdir -p "$out.tmp"
    cp "$src"/config/crd/bases/*.yaml "$out.tmp"/
    rm -rf "$out"
    mv "$out.tmp" "$out"
  fi
  AGENTAUTH_CHAOS_MESH_CRDS="$out"
  export AGENTAUTH_CHAOS_MESH_CRDS
  echo "Chaos Mesh CRDs ($version): $AGENTAUTH_CHAOS_MESH_CRDS"
}
