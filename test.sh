#!/usr/bin/env bash
# Runs every AgentAuth test. Installs what the tests need when it is missing
# (idempotent, and quick when everything is already there), then checks
# formatting, lints, docs, and runs the whole test suite.
#
#   ./test.sh            everything
#   ./test.sh -p agentauth-core    extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }

# Caches live outside the clone so a fresh clone (as in CI) rebuilds nothing
# that has not changed.
export AGENTAUTH_CACHE="${AGENTAUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentauth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$AGENTAUTH_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"
# CI builds each fresh clone once: incremental-compilation state would only
# pile up in the shared target dir (one copy per clone path).
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
mkdir -p "$AGENTAUTH_CACHE"

step "toolchain"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done
cargo --version

step "services the tests start: Redis, moto_server (AWS KMS), Vault/OpenBao (Transit)"
# Installers shared with ./dev.sh.
source scripts/deps.sh
ensure_redis
# moto is a real AWS API server (KMS included) for tests; it lives in a venv
# in the cache so that a fresh clone does not reinstall it.
MOTO_VERSION=5.2.5
venv="$AGENTAUTH_CACHE/venv"
if ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "moto[server]==$MOTO_VERSION"
fi
export AGENTAUTH_MOTO_SERVER="$venv/bin/moto_server"
echo "moto $MOTO_VERSION: $AGENTAUTH_MOTO_SERVER"
# A Vault-API dev server for the Vault Transit signer (built from Go modules once).
ensure_openbao
# The Python SDK (sdk/python) is built into a wheel by maturin, installed into a
# fresh venv and tested with pytest there (sdk/tests/python.rs).
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi
# The approval API's passkey ceremonies (webauthn-rs) link OpenSSL.
ensure_openssl
MATURIN_VERSION=1.16.0
if ! "$venv/bin/maturin" --version 2>/dev/null | grep -qx "maturin $MATURIN_VERSION"; then
  "$venv/bin/pip" install -q "maturin==$MATURIN_VERSION" "pytest==9.2.0" "pytest-asyncio==1.5.0"
fi
export AGENTAUTH_MATURIN="$venv/bin/maturin"
echo "maturin $MATURIN_VERSION: $AGENTAUTH_MATURIN"

step "local Kubernetes control plane (etcd + kube-apiserver), helm for the chart tests, Chaos Mesh CRDs"
ensure_control_plane
ensure_helm
ensure_simulator
# chaos/tests/chaos_mesh.rs validates chaos/chaos-mesh/*.yaml against them.
ensure_chaos_mesh_crds

step "approval UI: node modules, build, unit tests (vitest)"
# The browser end-to-end test (cli/tests/browser.rs, in the cargo tests
# below) drives Debian's chromium against the built UI.
ensure_chromium
ensure_node_modules
(cd approval-ui && npm run build && npx vitest run)

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked --quiet

step "alert rules: promtool check rules, promtool test rules"
ensure_promtool
scripts/check-alerts.sh

step "tests"
# One process per test binary on purpose: each binary shares one control
# plane between its tests (cargo-nextest would start one per test).
cargo test --workspace --all-features --locked "$@"

step "release binary (no test code in it), Dockerfile and Tiltfile checks"
# The product binary holds no test code (DESIGN §13): the Dockerfile's
# release build, without `agentauth dev` or a test crate. Neither Docker nor
# Tilt runs here: BuildKit's Dockerfile frontend lints the Dockerfile, and
# the Tiltfile is checked as Starlark against stand-ins of Tilt's builtins and
# the rendered chart (each script says what it does and does not check).
scripts/check-release-binary.sh
scripts/dockerfile-check/run.sh
scripts/tiltfile-check/run.sh

step "fuzz (a short run of every decoder target)"
# cargo-fuzz on the stable toolchain: no sanitizer (-s none) and
# RUSTC_BOOTSTRAP for the few unstable flags it passes. Longer runs:
#   AGENTAUTH_FUZZ_SECONDS=600 ./test.sh
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
fuzz_seconds="${AGENTAUTH_FUZZ_SECONDS:-8}"
for target in $(cd fuzz && cargo fuzz list); do
  echo "fuzz: $target for ${fuzz_seconds}s"
  log="$AGENTAUTH_CACHE/fuzz-$target.log"
  if ! (cd fuzz && CARGO_TARGET_DIR="$AGENTAUTH_CACHE/fuzz-target" RUSTC_BOOTSTRAP=1 \
    cargo fuzz run "$target" -s none -- -max_total_time="$fuzz_seconds") >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target failed; the crashing input is under fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log" || tail -n 1 "$log"
done
