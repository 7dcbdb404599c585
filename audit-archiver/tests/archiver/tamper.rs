//! Tampering, every way the archive can be attacked, each named by
//! `verify`. Threat: someone with write access to the archive store (or to
//! Redis before sealing) rewrites history to hide what an agent did.

use std::path::PathBuf;

use agentauth_archiver::ProblemKind;
use agentauth_archiver::seal::{self, Contents, Head};
use agentauth_archiver::segment;
use agentauth_archiver::verify::{self, VerifyOptions};
use agentauth_core::audit::{AuditEvent, Chain};
use agentauth_signer::LocalSigner;
use redis::AsyncCommands as _;

use crate::support::Env;

/// An archive of 3 segments (100 + 100 + 50 records) of two producers.
async fn sealed_archive() -> Env {
    let env = Env::new().await;
    let mut a = Chain::new("operator/op-0");
    let mut b = Chain::new("verifier/node-a");
    let running = env.start(env.config());
    env.produce(&mut a, 125).await;
    env.produce(&mut b, 125).await;
    env.sealed(250).await;
    running.stop().await;
    env
}

fn path(env: &Env, n: u64) -> PathBuf {
    env.store.dir().join(segment::name(n))
}

fn read(env: &Env, n: u64) -> segment::Decoded {
    segment::decode(&std::fs::read(path(env, n)).unwrap()).unwrap()
}

fn write(env: &Env, n: u64, lines: &[String], checkpoint: &str) {
    std::fs::write(path(env, n), segment::encode(lines, checkpoint).unwrap()).unwrap();
}

/// Rewrites segment `n`'s lines with `edit`, keeping its checkpoint.
fn edit_lines(env: &Env, n: u64, edit: impl FnOnce(&mut Vec<String>)) {
    let mut decoded = read(env, n);
    edit(&mut decoded.lines);
    write(env, n, &decoded.lines, &decoded.checkpoint);
}

fn event(line: &str) -> AuditEvent {
    AuditEvent::from_json(line).unwrap()
}

fn line(event: &AuditEvent) -> String {
    segment::record_line(event).unwrap()
}

async fn problem(env: &Env) -> agentauth_archiver::Problem {
    env.verify()
        .await
        .expect_err("verify must find the tampering")
}

/// Threat: a record's decision is flipped in place (deny → allow).
#[tokio::test]
async fn an_altered_record_is_named_by_its_line() {
    let env = sealed_archive().await;
    edit_lines(&env, 2, |lines| {
        let mut e = event(&lines[9]);
        let flipped = if e.decision.as_deref() == Some("deny") {
            "allow"
        } else {
            "deny"
        };
        e.decision = Some(flipped.into());
        lines[9] = line(&e);
    });
    let p = problem(&env).await;
    assert_eq!(p.kind, ProblemKind::Altered, "{p}");
    assert_eq!(
        (p.segment.as_str(), p.line),
        (segment::name(2).as_str(), Some(10))
    );
}

/// Threat: a record is edited and its hash and every later hash of its
/// producer recomputed, so the chain is whole again; the signed root is not.
#[tokio::test]
async fn an_altered_record_with_its_chain_rewritten_fails_the_signed_root() {
    let env = sealed_archive().await;
    edit_lines(&env, 3, |lines| {
        let mut prev: Option<String> = None;
        let target = event(&lines[0]).producer;
        for l in lines.iter_mut() {
            let mut e = event(l);
            if e.producer != target {
                continue;
            }
            if let Some(p) = &prev {
                e.prev = p.clone();
            } else {
                e.reason = Some("edited".into());
            }
            e.hash = e.compute_hash().unwrap();
            prev = Some(e.hash.clone());
            *l = line(&e);
        }
    });
    let p = problem(&env).await;
    assert_eq!(p.kind, ProblemKind::RootMismatch, "{p}");
    assert_eq!(p.segment, segment::name(3));
}

/// Threat: a record is deleted from a segment.
#[tokio::test]
async fn a_dropped_record_is_named() {
    let env = sealed_archive().await;
    let mut dropped = None;
    edit_lines(&env, 2, |lines| dropped = Some(event(&lines.remove(20))));
    let dropped = dropped.unwrap();
    let p = problem(&env).await;
    assert_eq!(p.kind, ProblemKind::Dropped, "{p}");
    assert_eq!(p.record.as_ref().unwrap().0, dropped.producer);
    assert_eq!(
        p.record.unwrap().1,
        dropped.seq + 1,
        "named at the next record"
    );
}

/// Threat: two records of one producer swap places.
#[tokio::test]
async fn reordered_records_are_named() {
    let env = sealed_archive().await;
    edit_lines(&env, 1, |lines| {
        let producer = event(&lines[0]).producer;
        let second = lines
            .iter()
            .position(|l| l != &lines[0] && event(l).producer == producer)
            .unwrap();
        lines.swap(0, second);
    });
    let p = problem(&env).await;
    assert!(
        matches!(p.kind, ProblemKind::Dropped | ProblemKind::Reordered),
        "a swap shows first as a gap, then as the late record: {p}"
    );
    assert_eq!(p.segment, segment::name(1));
    assert_eq!(p.line, Some(1));
}

/// Threat: a record is repeated (e.g. to double-count a payment).
#[tokio::test]
async fn a_duplicated_record_is_named() {
    let env = sealed_archive().await;
    edit_lines(&env, 2, |lines| {
        let copy = lines[4].clone();
        lines.insert(5, copy);
    });
    let p = problem(&env).await;
    assert_eq!(p.kind, ProblemKind::Duplicated, "{p}");
    assert_eq!(p.line, Some(6));
}

/// Threat: a second, different record claims a place already taken.
#[tokio::test]
async fn a_forked_chain_is_named() {
    let env = sealed_archive().await;
    edit_lines(&env, 2, |lines| {
        let mut twin = event(&lines[4]);
        twin.reason = Some("other".into());
        twin.hash = twin.compute_hash().unwrap();
        lines.insert(5, line(&twin));
    });
    let p = problem(&env).await;
    assert_eq!(p.kind, ProblemKind::Forked, "{p}");
    assert_eq!(p.line, Some(6));
}

/// Threat: a whole segment is deleted.
#[tokio::test]
async fn a_missing_segment_is_named() {
    let env = sealed_archive().await;
    std::fs::remove_file(path(&env, 2)).unwrap();
    let p = problem(&env).await;
    assert_eq!(p.kind, ProblemKind::MissingSegment, "{p}");
    assert_eq!(p.segment, segment::name(2));
}

/// Threat: the newest segment is deleted; only a pinned head detects it.
#[tokio::test]
async fn a_segment_dropped_from_the_end_is_named_against_the_pinned_head() {
    let env = sealed_archive().await;
    let head = env.verify().await.unwrap().head;
    std::fs::remove_file(path(&env, 3)).unwrap();
    let options = VerifyOptions {
        trusted: env.trusted(),
        head: Some(head),
    };
    let p = verify::verify(env.store.as_ref(), &options)
        .await
        .unwrap_err();
    assert_eq!(p.kind, ProblemKind::HeadMismatch, "{p}");
}

/// Threat: a segment is cut short, losing its checkpoint.
#[tokio::test]
async fn a_missing_checkpoint_is_named() {
    let env = sealed_archive().await;
    let decoded = read(&env, 2);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, (decoded.lines.join("\n") + "\n").as_bytes()).unwrap();
    std::fs::write(path(&env, 2), gz.finish().unwrap()).unwrap();
    let p = problem(&env).await;
    assert_eq!(p.kind, ProblemKind::MissingCheckpoint, "{p}");
}

/// Threat: records are altered and the segment re-sealed with the
/// attacker's own key.
#[tokio::test]
async fn a_checkpoint_re_signed_by_another_key_is_refused() {
    let env = sealed_archive().await;
    let mallory = LocalSigner::generate().unwrap();
    reseal(&env, 3, &mallory, |lines| lines.truncate(10)).await;
    let p = problem(&env).await;
    assert_eq!(p.kind, ProblemKind::BadCheckpoint, "{p}");
    assert!(p.message.contains("not a pinned checkpoint key"), "{p}");
}

/// Threat: an insider with the root key re-seals an earlier segment with
/// records removed; the next checkpoint's link breaks.
#[tokio::test]
async fn a_re_signed_earlier_segment_breaks_the_checkpoint_chain() {
    let env = sealed_archive().await;
    let signer = env.signer.clone();
    reseal(&env, 1, signer.as_ref(), |lines| lines.truncate(90)).await;
    let p = problem(&env).await;
    // Segment 1 is self-consistent; segment 2 names the broken link (its
    // first records also no longer follow their chains, but the link is
    // checked first).
    assert_eq!(p.kind, ProblemKind::BadCheckpoint, "{p}");
    assert_eq!(p.segment, segment::name(2));
    assert!(
        p.message.contains("does not follow the previous one"),
        "{p}"
    );
}

/// Re-seals segment `n` (after editing its lines) with `signer`.
async fn reseal(
    env: &Env,
    n: u64,
    signer: &dyn agentauth_signer::Signer,
    edit: impl FnOnce(&mut Vec<String>),
) {
    let previous = if n == 1 {
        Head::genesis()
    } else {
        Head::after(&read(env, n - 1).checkpoint).unwrap()
    };
    let original = Head::after(&read(env, n).checkpoint).unwrap();
    let mut lines = read(env, n).lines;
    edit(&mut lines);
    // Chain heads recomputed so the checkpoint agrees with its records.
    let mut producers = previous.producers.clone();
    for l in &lines {
        let e = event(l);
        let mark = producers.entry(e.producer.clone()).or_insert(
            agentauth_core::checkpoint::ProducerMark {
                last_seq: None,
                last_hash: None,
                heartbeat_seq: None,
            },
        );
        mark.last_seq = Some(e.seq);
        mark.last_hash = Some(e.hash.clone());
    }
    assert_eq!(original.segment, n);
    let sealed = seal::seal(
        signer,
        &previous,
        Contents {
            lines: &lines,
            producers,
            last_entry_id: None,
            now_ms: 1_800_000_000_000,
        },
    )
    .await
    .unwrap();
    std::fs::write(path(env, n), sealed.bytes).unwrap();
}

/// Threat: someone with Redis access cuts the newest entries of a
/// producer's chain (XDEL) and rewrites its stored end before the
/// archiver reads them. The producer's heartbeat still names the cut
/// records, so the sealed checkpoint records the gap and verify names it.
#[tokio::test]
async fn a_tail_cut_from_redis_before_sealing_is_named_by_the_heartbeat() {
    let env = Env::new().await;
    let mut a = Chain::new("verifier/node-a");
    let events = env.produce(&mut a, 10).await;
    let mut conn = env.redis().await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(agentauth_state::keys::AUDIT_STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    for (id, _) in &entries[7..] {
        xdel(&mut conn, id).await;
    }
    let _: () = conn
        .set(
            agentauth_state::keys::audit_last("verifier/node-a"),
            serde_json::to_string(&events[6]).unwrap(),
        )
        .await
        .unwrap();
    let running = env.start(env.config());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while running.metrics.truncations.get() == 0 || env.verify().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "no truncation seen");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    running.stop().await;
    let p = problem(&env).await;
    assert_eq!(p.kind, ProblemKind::TruncatedTail, "{p}");
    assert_eq!(p.record, Some(("verifier/node-a".into(), 9)));
    assert!(p.message.contains("ends at #6"), "{p}");
}

/// Threat: an entry is altered in Redis before the archiver reads it. The
/// archiver counts the break, seals the record as found (nothing hidden),
/// and verify names it.
#[tokio::test]
async fn a_record_altered_in_redis_is_counted_when_read_and_named_by_verify() {
    let env = Env::new().await;
    let mut a = Chain::new("verifier/node-a");
    env.produce(&mut a, 10).await;
    let mut conn = env.redis().await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(agentauth_state::keys::AUDIT_STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    // XADD cannot rewrite an entry in place: delete it and add a forged
    // one at the end, where a reader finds it out of order and altered.
    let (id, fields) = &entries[4];
    let forged = fields[0].1.replace("team-a/agent-1", "team-x/agent-9");
    xdel(&mut conn, id).await;
    let _: String = redis::cmd("XADD")
        .arg(agentauth_state::keys::AUDIT_STREAM)
        .arg("*")
        .arg("event")
        .arg(forged)
        .query_async(&mut conn)
        .await
        .unwrap();
    let running = env.start(env.config());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.stream_len().await > 0 {
        assert!(std::time::Instant::now() < deadline, "not sealed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let breaks: u64 = ["altered", "missing"]
        .iter()
        .map(|k| running.metrics.chain_breaks.with_label_values(&[k]).get())
        .sum();
    running.stop().await;
    assert!(breaks >= 1, "the archiver counted the break");
    let p = problem(&env).await;
    assert_eq!(
        p.kind,
        ProblemKind::Dropped,
        "record 4 is missing where it belonged: {p}"
    );
    assert_eq!(p.record, Some(("verifier/node-a".into(), 5)));
}

async fn xdel(conn: &mut redis::aio::MultiplexedConnection, id: &str) {
    let _: u64 = redis::cmd("XDEL")
        .arg(agentauth_state::keys::AUDIT_STREAM)
        .arg(id)
        .query_async(conn)
        .await
        .unwrap();
}

/// Threat: Redis loses its data (a failover without persistence, a flush)
/// and a producer restarts its chain at seq 0 under the same id. Its new
/// records sit at or below the sealed chain head but are newer in the
/// stream: they are sealed and the restart is counted and named, never
/// acknowledged unseen as if they had been sealed already.
#[tokio::test]
async fn a_chain_restarted_after_redis_lost_its_data_is_sealed_not_dropped() {
    let env = Env::new().await;
    let producer = "operator/op-0";
    let mut first = Chain::new(producer);
    let running = env.start(env.config());
    env.produce(&mut first, 30).await;
    env.sealed(30).await;

    // What Redis knew of the producer's chain is gone; the producer starts over.
    let mut conn = env.redis().await;
    for key in [
        agentauth_state::keys::audit_last(producer),
        format!("agentauth:{{audit}}:seen:{producer}"),
    ] {
        let _: i64 = conn.del(key).await.unwrap();
    }
    let mut restarted = Chain::new(producer);
    env.produce(&mut restarted, 10).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.stream_len().await > 0 {
        assert!(std::time::Instant::now() < deadline, "not sealed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let breaks: u64 = ["altered", "missing", "reordered", "duplicate", "forked"]
        .iter()
        .map(|k| running.metrics.chain_breaks.with_label_values(&[k]).get())
        .sum();
    let redelivered = running.metrics.redelivered.get();
    running.stop().await;
    assert!(breaks >= 1, "the restart is counted as a break");
    assert_eq!(redelivered, 0, "nothing new passes for already sealed");

    let all = agentauth_archiver::show::show(env.store.as_ref(), &Default::default())
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        40,
        "every record of both chains is in the archive"
    );
    let p = problem(&env).await;
    assert_eq!(p.record, Some((producer.into(), 0)), "{p}");
}
