#!/usr/bin/env bash
# Checks the Prometheus alert rules the chart ships and runs their unit tests:
#
#   promtool check rules charts/agentauth/files/prometheus-rules.yaml
#   promtool test rules deploy/prometheus/rules-test.yaml
#
# promtool is $AGENTAUTH_PROMTOOL (ensure_promtool in scripts/deps.sh builds
# it), else the one on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

promtool="${AGENTAUTH_PROMTOOL:-$(command -v promtool || true)}"
if [[ -z "$promtool" ]]; then
  echo "promtool not found: run 'source scripts/deps.sh && ensure_promtool' or put promtool on PATH" >&2
  exit 1
fi

"$promtool" check rules charts/agentauth/files/prometheus-rules.yaml
"$promtool" test rules deploy/prometheus/rules-test.yaml
