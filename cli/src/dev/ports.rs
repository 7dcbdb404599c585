//! The loopback ports of one dev run: fixed, counted from `--base-port`, so
//! the printed URLs stay the same from one run to the next; or, with
//! `--base-port 0`, whatever ports are free (tests, several runs at once).
//!
//! | service | port |
//! |---|---|
//! | operator (agent API, approval API, JWKS) | base |
//! | verifier-a | base + 1 |
//! | verifier-b | base + 2 |
//! | webhook (HTTPS) | base + 3 |
//! | example provider | base + 4 |
//! | redis | base + 5 |
//! | audit archiver (/metrics) | base + 6 |

use std::net::TcpListener;

use super::DevError;

/// The ports of every service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// The operator.
    pub operator: u16,
    /// verifier-a.
    pub verifier_a: u16,
    /// verifier-b.
    pub verifier_b: u16,
    /// The webhook.
    pub webhook: u16,
    /// The example provider.
    pub provider: u16,
    /// Redis.
    pub redis: u16,
    /// The audit archiver's /metrics and /healthz.
    pub archiver: u16,
}

const SERVICES: [&str; 7] = [
    "operator",
    "verifier-a",
    "verifier-b",
    "webhook",
    "example provider",
    "redis",
    "audit archiver",
];

impl Ports {
    /// The ports for `base` (0: free ports), each checked to be free now.
    pub fn plan(base: u16) -> Result<Ports, DevError> {
        let mut ports = [0_u16; 7];
        if base == 0 {
            // Bound all at once so they are distinct, then released.
            let listeners = (0..ports.len())
                .map(|_| TcpListener::bind(("127.0.0.1", 0)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(DevError::NoFreePort)?;
            for (port, listener) in ports.iter_mut().zip(&listeners) {
                *port = listener.local_addr().map_err(DevError::NoFreePort)?.port();
            }
        } else {
            for (offset, (port, service)) in ports.iter_mut().zip(SERVICES).enumerate() {
                let candidate = u16::try_from(offset)
                    .ok()
                    .and_then(|o| base.checked_add(o))
                    .ok_or(DevError::PortTaken {
                        service,
                        port: base,
                    })?;
                if TcpListener::bind(("127.0.0.1", candidate)).is_err() {
                    return Err(DevError::PortTaken {
                        service,
                        port: candidate,
                    });
                }
                *port = candidate;
            }
        }
        let [
            operator,
            verifier_a,
            verifier_b,
            webhook,
            provider,
            redis,
            archiver,
        ] = ports;
        Ok(Ports {
            operator,
            verifier_a,
            verifier_b,
            webhook,
            provider,
            redis,
            archiver,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_taken_port_is_named_with_its_service() {
        let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        // The taken port is the operator's when it is the base.
        match Ports::plan(port) {
            Err(DevError::PortTaken { service, port: p }) => {
                assert_eq!((service, p), ("operator", port));
            }
            other => panic!("expected PortTaken, got {other:?}"),
        }
    }

    #[test]
    fn base_zero_picks_distinct_free_ports() {
        let p = Ports::plan(0).unwrap();
        let mut all = vec![
            p.operator,
            p.verifier_a,
            p.verifier_b,
            p.webhook,
            p.provider,
            p.redis,
            p.archiver,
        ];
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 7);
    }
}
