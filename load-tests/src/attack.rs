//! One goose attack: `users` users running one transaction in a loop for
//! a run time, no controllers (telnet; WebSocket is off by default), no report files, goose's
//! own metrics kept (not printed): the scenarios' numbers come from their
//! [`Recorder`](crate::recorder::Recorder).

use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::prelude::*;

use crate::LoadError;

/// How many users run for how long.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Concurrent users (each its own HTTP client and connection).
    pub users: usize,
    /// How long the attack runs once its users are started.
    pub run_time: Duration,
}

/// Runs `transaction` as scenario `name` under `plan`. `host` is goose's
/// base URL (requests use full URLs, so it only has to be valid).
pub async fn run(
    name: &str,
    host: &str,
    plan: &Plan,
    transaction: TransactionFunction,
) -> Result<GooseMetrics, LoadError> {
    let users = plan.users.max(1).to_string();
    let run_time = plan.run_time.as_secs().max(1).to_string();
    let configuration = GooseConfiguration::parse_args_default(&[
        "--host",
        host,
        "--users",
        &users,
        // Every user starts within the first second.
        "--increase-rate",
        &users,
        "--run-time",
        &run_time,
        "--timeout",
        "30",
        "--no-telnet",
        "--no-reset-metrics",
        "--no-print-metrics",
        "--no-error-summary",
        "--no-gzip",
        "--quiet",
    ])
    .map_err(|e| LoadError::Goose(e.to_string()))?;
    GooseAttack::initialize_with_config(configuration)
        .map_err(|e| LoadError::Goose(e.to_string()))?
        .register_scenario(
            Scenario::new(name).register_transaction(Transaction::new(transaction).set_name(name)),
        )
        .execute()
        .await
        .map_err(|e| LoadError::Goose(e.to_string()))
}

/// Sends one POST through the user's goose client (so goose counts it
/// too) and times it to the end of its body: status, body, latency.
pub async fn post(
    user: &mut GooseUser,
    name: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (Result<(u16, Vec<u8>), String>, std::time::Instant, Duration) {
    let mut builder = match user.get_request_builder(&GooseMethod::Post, url) {
        Ok(b) => b,
        Err(e) => {
            return (
                Err(e.to_string()),
                std::time::Instant::now(),
                Duration::ZERO,
            );
        }
    };
    builder = builder.header("content-type", "application/json");
    for (header, value) in headers {
        builder = builder.header(*header, *value);
    }
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path(url)
        .name(name)
        .set_request_builder(builder.body(body))
        .build();
    let sent = std::time::Instant::now();
    let answer = match user.request(request).await {
        Ok(goose) => match goose.response {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => Ok((status, bytes.to_vec())),
                    Err(e) => Err(format!("body: {e}")),
                }
            }
            Err(e) => Err(if e.is_timeout() {
                "timeout".to_owned()
            } else if e.is_connect() {
                "connect".to_owned()
            } else {
                "transport".to_owned()
            }),
        },
        Err(e) => Err(format!("goose: {e}")),
    };
    (answer, sent, sent.elapsed())
}
