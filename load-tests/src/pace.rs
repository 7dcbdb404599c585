//! When a goose user sends: each of `users` users sends every
//! `users / rate` seconds, offset by its index, so together they offer
//! `rate` requests a second. A user that falls behind (the system or the
//! generator is saturated) sends at once but does not burst to catch up:
//! the achieved throughput then shows the shortfall instead of the
//! latencies hiding it.
//!
//! goose's own `--throttle-requests` is not used: it waits inside
//! `GooseUser::request`, where that wait would be counted as latency.

use std::time::{Duration, Instant};

use goose::prelude::GooseUser;

/// A user's schedule and its small random source.
#[derive(Clone, Debug)]
pub struct Pace {
    interval: Duration,
    next: Instant,
    seq: u64,
    rng: u64,
}

/// One turn of a user: which request of the user it is, and a random
/// number for the scenario's choices.
#[derive(Clone, Copy, Debug)]
pub struct Turn {
    /// The user's index.
    pub user: usize,
    /// The user's n-th request, from 0.
    pub seq: u64,
    /// A random number (xorshift, seeded by the user index).
    pub random: u64,
}

impl Pace {
    /// The schedule of user `index` of `users` offering `rate` per second
    /// together.
    pub fn new(rate: f64, users: usize, index: usize) -> Self {
        let interval = Duration::from_secs_f64(users as f64 / rate.max(0.001));
        let users_u32 = u32::try_from(users.max(1)).unwrap_or(u32::MAX);
        let index_u32 = u32::try_from(index).unwrap_or(0);
        Pace {
            interval,
            next: Instant::now() + interval / users_u32 * index_u32,
            seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        }
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// Waits for this user's next turn (making its schedule on its first).
pub async fn next_turn(user: &mut GooseUser, rate: f64, users: usize) -> Turn {
    let index = user.weighted_users_index;
    if user.get_session_data::<Pace>().is_none() {
        user.set_session_data(Pace::new(rate, users, index));
    }
    let (at, turn) = match user.get_session_data_mut::<Pace>() {
        Some(pace) => {
            let at = pace.next;
            pace.next = at.max(Instant::now()) + pace.interval;
            let turn = Turn {
                user: index,
                seq: pace.seq,
                random: pace.random(),
            };
            pace.seq += 1;
            (at, turn)
        }
        None => (
            Instant::now(),
            Turn {
                user: index,
                seq: 0,
                random: 0,
            },
        ),
    };
    tokio::time::sleep_until(at.into()).await;
    turn
}
