#!/usr/bin/env bash
# The product binary holds no test code (DESIGN §13): builds `agentauth`
# exactly as the Dockerfile does and checks that
#
#   - `agentauth --help` lists no `dev` subcommand,
#   - `agentauth dev` is refused by clap as an unrecognized subcommand,
#     whatever follows it,
#   - the binary holds no trace of the test crates and helpers (their crate
#     names appear in symbols and panic locations even when a single
#     function of theirs is linked in).
#
#   scripts/check-release-binary.sh                   build, then check
#   scripts/check-release-binary.sh --binary PATH     check PATH only (e.g. a
#                                                     `--features dev` build,
#                                                     which must fail)
#
# Prints one verdict line; exits 1 when the binary fails a check.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

# What only test code leaves in a binary: the test crates, the software
# passkey helpers of core and crds, and the `agentauth dev` module.
MARKERS=(
  agentauth_testenv
  agentauth_soft_passkey
  SoftAuthenticator
  sign_with_soft_authenticator
  e2e/testenv/src
  e2e/soft-passkey/src
  cli/src/dev/
)

binary=""
if [ "${1:-}" = "--binary" ]; then
  binary="${2:?--binary needs a path}"
else
  ensure_openssl >&2
  start=$SECONDS
  # The Dockerfile's build, word for word.
  cargo build --release --locked -p agentauth-cli --features gcp-kms
  echo "release build: $((SECONDS - start))s" >&2
  binary="$CARGO_TARGET_DIR/release/agentauth"
fi

problems=()
help="$("$binary" --help)"
if grep -Eq '^[[:space:]]+dev([[:space:]]|$)' <<<"$help"; then
  problems+=("--help lists a dev subcommand")
fi

# `dev --help`, not a bare `dev`: a binary that has the subcommand must print
# its help and exit, not start the whole system. clap refuses an unknown
# subcommand before it reads --help: "error: unrecognized subcommand 'dev'",
# exit code 2.
status=0
refusal="$(timeout 20 "$binary" dev --help 2>&1)" || status=$?
if [ "$status" -ne 2 ] || ! grep -q "unrecognized subcommand 'dev'" <<<"$refusal"; then
  problems+=("\`agentauth dev\` was not refused as an unrecognized subcommand (exit $status)")
fi

found=()
for marker in "${MARKERS[@]}"; do
  if grep -aqF -- "$marker" "$binary"; then
    found+=("$marker")
  fi
done
if [ "${#found[@]}" -gt 0 ]; then
  problems+=("test code in the binary: ${found[*]}")
fi

size="$(du -h "$binary" | cut -f1)"
if [ "${#problems[@]}" -gt 0 ]; then
  printf -v joined '%s; ' "${problems[@]}"
  printf 'release binary check: FAILED for %s (%s): %s\n' "$binary" "$size" "${joined%; }"
  exit 1
fi
printf 'release binary check: OK, %s (%s) has no dev subcommand and none of the %d test-code markers\n' \
  "$binary" "$size" "${#MARKERS[@]}"
