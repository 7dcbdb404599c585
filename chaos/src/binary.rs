//! Finds the `agentauth` binary the experiments run as operator and verifier
//! processes. `CARGO_BIN_EXE_agentauth` is only given to the CLI package's
//! own tests, so this looks, in order, at:
//!
//! 1. `AGENTAUTH_BIN` (any build, e.g. a release binary);
//! 2. `agentauth` next to the test binary's `deps/` folder, i.e. the same
//!    target folder and profile (`cargo test --workspace` builds it there
//!    before any test runs);
//! 3. otherwise it builds it: `cargo build -p agentauth-cli --bin agentauth`
//!    (`chaos/run.sh` does this first, so a clean clone works either way).

use std::path::PathBuf;
use std::process::Command;

use crate::Error;

/// Names the `agentauth` binary to use.
pub const BIN_ENV: &str = "AGENTAUTH_BIN";

/// The `agentauth` binary (see the module docs for where it comes from).
pub fn agentauth() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(BIN_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("find the test binary", e))?;
    // target/<profile>/deps/<test binary> → target/<profile>/agentauth
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|p| p.to_path_buf())
        .ok_or_else(|| Error::Other(format!("{} has no profile folder", exe.display())))?;
    let candidate = profile_dir.join("agentauth");
    if candidate.is_file() {
        return Ok(candidate);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "agentauth-cli", "--bin", "agentauth"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build
        .status()
        .map_err(|e| Error::io("run cargo build for the agentauth binary", e))?;
    if status.success() && candidate.is_file() {
        Ok(candidate)
    } else {
        Err(Error::Other(format!(
            "no agentauth binary at {} and `cargo build -p agentauth-cli` failed ({status}); \
             build it or set {BIN_ENV}",
            candidate.display()
        )))
    }
}
