//! The smoke profile inside `cargo test`: a real `agentauth dev` (local
//! control plane, Redis, operator, webhook, two verifiers, archiver), a few
//! agents with approved grants, and every scenario for a few seconds at low
//! rates; fails on more than 1 % errors or unexpected denials (none at all
//! in the approval flow), a missed rate or a (loose) latency bound, naming
//! each.
//!
//! It needs the `agentauth` binary with `agentauth dev`. Cargo gives
//! `CARGO_BIN_EXE_*` only to a package's own tests, so it is looked up in
//! this test's target folder (`target/debug/agentauth`, which
//! `cargo test --workspace --all-features` builds before any test runs),
//! or taken from `$AGENTAUTH_BIN`; when neither has `agentauth dev`, this
//! test builds it with `cargo build -p agentauth-cli --features dev`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Instant;

use agentauth_load::dev::{Dev, locate_agentauth};
use agentauth_load::report::{Machine, render_run};
use agentauth_load::{profile, run};

fn agentauth_binary() -> PathBuf {
    if let Ok(path) = locate_agentauth() {
        return path;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // This test's own target folder (target/debug/deps/smoke-… → target),
    // whatever CARGO_TARGET_DIR the caller's shell has.
    let exe = std::env::current_exe().unwrap();
    let target_dir = exe.ancestors().nth(3).unwrap().to_owned();
    println!(
        "building agentauth with the dev feature in {}",
        target_dir.display()
    );
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "-p",
            "agentauth-cli",
            "--features",
            "dev",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build -p agentauth-cli --features dev"
    );
    locate_agentauth().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_scenario_meets_the_smoke_bounds() {
    let binary = agentauth_binary();
    let state = std::env::temp_dir().join(format!("agentauth-load-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let dev = Dev::start(&binary, &state).unwrap_or_else(|e| panic!("{e}"));
    let mut machine = Machine::now();
    let result = runtime.block_on(run::run(&dev, &profile::smoke()));
    let stopped = dev.stop();
    let result = result.unwrap_or_else(|e| {
        panic!(
            "{e} (agentauth dev log: {})",
            state.join("dev.log").display()
        )
    });
    machine.load_after = agentauth_load::report::load_average();
    println!(
        "{}",
        render_run(&result, "cargo test -p agentauth-load", &machine, "smoke")
    );
    println!("smoke run took {:?}", started.elapsed());
    stopped.unwrap_or_else(|e| panic!("{e}"));
    let failures = result.failures();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&state);
}
