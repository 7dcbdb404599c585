# Installers shared by ./test.sh and ./dev.sh: each checks first and is
# quick when the tool is already there. Source it from the repository root:
#
#   source scripts/deps.sh
#   as_root CMD...          # runs CMD as root (sudo unless already root)
#   ensure_openssl          # OpenSSL headers + pkg-config (webauthn-rs links OpenSSL)
#   ensure_redis            # redis-server on PATH (Debian package, via apt)
#   ensure_control_plane    # exports KUBEBUILDER_ASSETS (etcd + kube-apiserver)

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
