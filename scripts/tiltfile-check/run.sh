#!/usr/bin/env bash
# Checks the Tiltfile without Tilt (main.go says what is and is not checked):
# Starlark syntax and names, Tilt call signatures, and the chart rendered as
# Tilt's helm() renders it, with the chart's minimal CI values standing in for
# a cluster's own `tilt up -- --values FILE`. One verdict line.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/deps.sh
check="$(go_local_tool scripts/tiltfile-check)"
values=charts/agentauth/ci/minimal-values.yaml
if [ ! -f "$values" ]; then
  echo "$values is missing: the chart is not rendered" >&2
  exec "$check" -file Tiltfile
fi
helm="${AGENTAUTH_HELM:-$(scripts/go-tool.sh helm helm.sh/helm/v4 v4.3.2 helm.sh/helm/v4/cmd/helm)}"
exec "$check" -file Tiltfile -helm "$helm" -- --values "$values"
