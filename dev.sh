#!/usr/bin/env bash
# Runs the whole AgentAuth system on this machine, with coloured logs per
# service, until Ctrl-C:
#
#   ./dev.sh                     local etcd + kube-apiserver (or the cluster of
#                                the current kubeconfig, when it answers)
#   ./dev.sh --local             always the local control plane
#   ./dev.sh --help              every flag of `agentauth dev`
#
# It builds the `agentauth` binary with the `dev` feature (the release
# binary and the image have no `agentauth dev`: they hold no test code), the
# approval UI (when npm is installed), makes sure redis-server and the local
# control plane binaries are there, then hands over to `agentauth dev`.
# docs/dev.md walks through what to do once it prints "ready".
set -euo pipefail
cd "$(dirname "$0")"
source scripts/deps.sh

step() { printf '\033[1;34m==> %s\033[0m\n' "$*" >&2; }

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }

step "building agentauth (cargo build -p agentauth-cli --features dev)"
ensure_openssl >&2
cargo build -p agentauth-cli --features dev >&2

step "approval UI (approval-ui: npm ci && npm run build)"
if command -v npm >/dev/null; then
  ensure_node_modules >&2
  (cd approval-ui && npm run build --silent) >&2
else
  echo "npm not found: the approval UI is not built, so agentauth dev serves no UI" \
    "(install Node 20+ and npm, or use \`agentauth dev approve\`)" >&2
fi

step "redis-server (shared state for the operator and the verifiers)"
if ! ensure_redis >&2; then
  echo "no redis-server: agentauth dev keeps state in process (one verifier only)" >&2
fi

step "local control plane binaries (etcd + kube-apiserver)"
if ! ensure_control_plane >&2; then
  echo "could not build etcd + kube-apiserver (is Go installed?); agentauth dev" \
    "now needs the cluster of your current kubeconfig to answer" >&2
fi

exec "$CARGO_TARGET_DIR/debug/agentauth" dev "$@"
