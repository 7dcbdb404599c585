# syntax=docker/dockerfile:1
#
# The AgentAuth image: the `agentauth` binary (operator, verifier, webhook,
# archiver; the Helm chart picks the subcommand) and the built approval UI
# the operator serves under /approvals/.
#
#   docker build -t agentauth .
#
#  ui     node: npm ci && npm run build                        ─▶ approval-ui/dist ─┐
#  build  rust: cargo build --release -p agentauth-cli --features gcp-kms ─▶ agentauth ─┤
#  final  distroless/cc (glibc, libssl3, no shell), uid 65532 ◀───────────────────────┘
#
# The release build has no `dev` feature, so the binary holds no test code:
# no local control plane harness, no software passkey, no `agentauth dev`
# (DESIGN §13). scripts/check-release-binary.sh checks that same build.
# scripts/dockerfile-check/ lints this file (./test.sh).

# (The last comment line above an ARG or a stage is its description, as
# `docker buildx build --call=outline` shows it.)
#
# The workspace's rust-version (Cargo.toml): every dependency in Cargo.lock
# declares it builds on it.
# RUST_VERSION is the Rust the binary is built with.
ARG RUST_VERSION=1.89
# NODE_VERSION is the Node.js the approval UI is built with (20 or later).
ARG NODE_VERSION=22

# ui builds the approval UI (approval-ui/dist) from package-lock.json.
FROM node:${NODE_VERSION}-bookworm-slim AS ui
WORKDIR /src/approval-ui
# The lockfile alone first: the node_modules layer is rebuilt only when it changes.
COPY approval-ui/package.json approval-ui/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
COPY approval-ui/ ./
RUN npm run build

# On bookworm, like the runtime image (distroless debian12): the binary links
# the glibc and libssl3 (webauthn-rs) it was built against. The image already
# has gcc, pkg-config and libssl-dev (buildpack-deps). Every root-key
# backend is in (gcp-kms); the dev feature is not.
# build compiles the release agentauth binary.
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Only what cargo reads: every workspace member (cargo loads all their
# manifests even to build one), so an edit to the UI, the chart or the docs
# does not rebuild the binary. scripts/dockerfile-check/ fails when a member
# is missing here.
COPY Cargo.toml Cargo.lock ./
COPY core/ core/
COPY crds/ crds/
COPY state/ state/
COPY service/ service/
COPY mcp-gateway/ mcp-gateway/
COPY signer/ signer/
COPY audit-archiver/ audit-archiver/
COPY operator/ operator/
COPY verifier/ verifier/
COPY webhook/ webhook/
COPY cli/ cli/
COPY sdk/ sdk/
COPY e2e/testenv/ e2e/testenv/
COPY e2e/soft-passkey/ e2e/soft-passkey/
COPY e2e/chart/ e2e/chart/
COPY chaos/ chaos/
COPY load-tests/ load-tests/
COPY examples/mcp-payments/ examples/mcp-payments/
# The registry and target dir persist between builds (BuildKit cache mounts),
# so a one-line change recompiles one crate, not all of them; the binary is
# copied out of the cache mount to be part of the layer. The copy leaves out
# the line tables (profile.release keeps them for profiling): about 160 of the
# binary's 207 MB. Symbols stay, so a backtrace still names functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p agentauth-cli --features gcp-kms \
 && strip --strip-debug -o /usr/local/bin/agentauth target/release/agentauth

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/agentauth /agentauth
COPY --from=ui /src/approval-ui/dist /usr/share/agentauth/approval-ui
# The operator's --ui-dir; the verifier and the webhook ignore it.
ENV AGENTAUTH_UI_DIR=/usr/share/agentauth/approval-ui
# Numeric, so that a pod's runAsNonRoot can be verified by the kubelet
# (65532 is distroless's "nonroot").
USER 65532:65532
# Operator (agent API, approval UI, /metrics), verifier, webhook (HTTPS).
EXPOSE 8080 8081 8443
ENTRYPOINT ["/agentauth"]
