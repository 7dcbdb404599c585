#!/usr/bin/env bash
# Lints the Dockerfile and .dockerignore with BuildKit's own Dockerfile
# frontend, no Docker needed (main.go says what is checked). One verdict line.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/deps.sh
"$(go_local_tool scripts/dockerfile-check)" -root .
