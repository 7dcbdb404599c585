#!/usr/bin/env bash
# Runs the chaos experiments (chaos/tests/*.rs) and writes their reports.
#
#   chaos/run.sh all                 every experiment, one after the other
#   chaos/run.sh redis_kill          one: redis_kill, redis_slow, leader_kill,
#                                    apiserver_stop, verifier_restart, clock_skew
#   chaos/run.sh chaos_mesh          validate chaos-mesh/*.yaml against Chaos Mesh's CRDs
#
# Reports go to $AGENTAUTH_CHAOS_RESULTS (default: chaos/results/), one
# <experiment>.md each. The `agentauth` binary is built first (debug, like
# `cargo test`), so a clean clone works; AGENTAUTH_BIN overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."

experiments=(redis_kill redis_slow leader_kill apiserver_stop verifier_restart clock_skew)
what="${1:-}"
case "$what" in
  all) selected=("${experiments[@]}") ;;
  chaos_mesh) selected=(chaos_mesh) ;;
  "" | -h | --help)
    sed -n '2,11p' "$0"
    exit 2
    ;;
  *)
    if [[ " ${experiments[*]} " != *" $what "* ]]; then
      echo "unknown experiment: $what (one of: all ${experiments[*]} chaos_mesh)" >&2
      exit 2
    fi
    selected=("$what")
    ;;
esac

source scripts/deps.sh
ensure_redis >/dev/null
ensure_control_plane >/dev/null
if [ "$what" = chaos_mesh ]; then ensure_chaos_mesh_crds; fi
export AGENTAUTH_CHAOS_RESULTS="${AGENTAUTH_CHAOS_RESULTS:-$PWD/chaos/results}"
mkdir -p "$AGENTAUTH_CHAOS_RESULTS"

if [ -z "${AGENTAUTH_BIN:-}" ]; then
  cargo build -p agentauth-cli --bin agentauth
fi

failed=()
for experiment in "${selected[@]}"; do
  echo "==> chaos: $experiment"
  if ! cargo test -p agentauth-chaos --test "$experiment" -- --nocapture; then
    failed+=("$experiment")
  fi
done
echo "reports: $AGENTAUTH_CHAOS_RESULTS"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
