//! Semantics both spools must share, run against each (disk in `disk.rs`, Redis in
//! `redis.rs`'s tests).

use bytes::Bytes;

use super::{Entry, Failure, QueueError, Spool};

pub(crate) const T0: u64 = 1_700_000_000_000;

pub(crate) fn entry(route: &str, id: &str, body: &[u8]) -> Entry {
    Entry::new(
        id,
        route,
        "POST",
        "/hook?x=1",
        vec![
            (b"content-type".to_vec(), b"application/json".to_vec()),
            (b"x-dup".to_vec(), b"1".to_vec()),
            (b"x-dup".to_vec(), b"2".to_vec()),
        ],
        Bytes::copy_from_slice(body),
        T0,
    )
}

fn ids(c: &[super::Claimed]) -> Vec<&str> {
    c.iter().map(|c| c.entry.id.as_str()).collect()
}

/// Enqueue, dedupe, claim order and leases, attempts, reschedule, ack, dead letters, retry,
/// purge, stats. `spool` must be empty and have room for at least 10 entries of 1 KiB.
pub(crate) async fn check_semantics(spool: &Spool) {
    let r = "conf";
    for i in 0..3 {
        spool
            .enqueue(entry(r, &format!("m{i}"), b"{\"n\":1}"))
            .await
            .unwrap();
    }
    // Same id, same route, undelivered: not stored twice. Another route is independent.
    assert!(matches!(
        spool.enqueue(entry(r, "m1", b"other")).await,
        Err(QueueError::AlreadyQueued)
    ));
    spool.enqueue(entry("other", "m1", b"x")).await.unwrap();

    let s = spool.stats(&[r, "other", "none"], T0 + 5000).await.unwrap();
    assert_eq!(s[r].depth, 3);
    assert_eq!(s[r].dead, 0);
    assert_eq!(s[r].oldest_ms, 5000);
    assert_eq!(s["other"].depth, 1);
    assert_eq!(s["none"], super::RouteStats::default());

    // Oldest first; the claim counts attempt 1; the entry comes back byte for byte.
    let c = spool.claim(r, "w1", 2, T0).await.unwrap();
    assert_eq!(ids(&c), ["m0", "m1"]);
    assert_eq!(c[0].entry.attempts, 1);
    let mut want = entry(r, "m0", b"{\"n\":1}");
    want.attempts = 1;
    assert_eq!(c[0].entry, want);
    // Leased entries are not handed out again; the rest is.
    let c2 = spool.claim(r, "w1", 10, T0).await.unwrap();
    assert_eq!(ids(&c2), ["m2"]);
    assert!(spool.claim(r, "w1", 10, T0).await.unwrap().is_empty());

    // Delivered: gone, and its id may be queued again.
    spool.ack(&c[0]).await.unwrap();
    spool.enqueue(entry(r, "m0", b"again")).await.unwrap();

    // Retry later: not due before next_attempt_at, then attempt 2 with the failure kept.
    let fail = Failure {
        status: Some(503),
        error: Some("upstream 503".into()),
    };
    spool.reschedule(&c[1], T0 + 60_000, &fail).await.unwrap();
    // Still queued and undelivered while waiting: a duplicate is refused.
    assert!(matches!(
        spool.enqueue(entry(r, "m1", b"dup")).await,
        Err(QueueError::AlreadyQueued)
    ));
    let c3 = spool.claim(r, "w1", 10, T0 + 59_999).await.unwrap();
    assert_eq!(ids(&c3), ["m0"], "m1 is not due yet");
    assert_eq!(c3[0].entry.body, Bytes::from_static(b"again"));
    let c4 = spool.claim(r, "w1", 10, T0 + 60_000).await.unwrap();
    assert_eq!(ids(&c4), ["m1"]);
    assert_eq!(c4[0].entry.attempts, 2);
    assert_eq!(c4[0].entry.last_status, Some(503));
    assert_eq!(c4[0].entry.last_error.as_deref(), Some("upstream 503"));
    assert_eq!(c4[0].entry.next_attempt_at, T0 + 60_000);

    // Dead letters: listed without bodies, counted, the id freed.
    let gone = Failure {
        status: Some(410),
        error: Some("refused".into()),
    };
    spool.dead_letter(&c4[0], &gone).await.unwrap();
    spool
        .dead_letter(&c2[0], &Failure::default())
        .await
        .unwrap();
    let dead = spool.dead(r, 100).await.unwrap();
    assert_eq!(dead.len(), 2);
    let m1 = dead.iter().find(|d| d.id == "m1").unwrap();
    assert_eq!(m1.route, r);
    assert_eq!(m1.attempts, 2);
    assert_eq!(m1.last_status, Some(410));
    assert_eq!(m1.last_error.as_deref(), Some("refused"));
    assert_eq!(m1.queued_at, T0);
    assert_eq!(spool.dead(r, 1).await.unwrap().len(), 1);
    let s = spool.stats(&[r], T0).await.unwrap();
    assert_eq!((s[r].depth, s[r].dead), (1, 2), "{s:?}");

    // Retry one dead letter by id: due now, attempts kept.
    assert!(spool.retry_dead(r, "m1", T0 + 70_000).await.unwrap());
    assert!(!spool.retry_dead(r, "m1", T0 + 70_000).await.unwrap());
    assert!(!spool.retry_dead(r, "nope", T0).await.unwrap());
    let c5 = spool.claim(r, "w1", 10, T0 + 70_000).await.unwrap();
    assert_eq!(ids(&c5), ["m1"]);
    assert_eq!(c5[0].entry.attempts, 3);
    spool.ack(&c5[0]).await.unwrap();

    // A dead letter whose id is queued again stays dead on retry (no double entry).
    spool.enqueue(entry(r, "m2", b"new")).await.unwrap();
    assert!(!spool.retry_dead(r, "m2", T0).await.unwrap());
    assert_eq!(spool.retry_all_dead(r, T0).await.unwrap(), 0);
    assert_eq!(spool.purge_dead(r).await.unwrap(), 1);
    assert!(spool.dead(r, 100).await.unwrap().is_empty());

    // Retry all, purge: counts.
    let c6 = spool.claim(r, "w1", 10, T0).await.unwrap();
    assert_eq!(ids(&c6), ["m2"]);
    for c in c3.iter().chain(&c6) {
        spool.dead_letter(c, &Failure::default()).await.unwrap();
    }
    assert_eq!(spool.retry_all_dead(r, T0).await.unwrap(), 2);
    let c7 = spool.claim(r, "w1", 10, T0).await.unwrap();
    assert_eq!(c7.len(), 2);
    for c in &c7 {
        spool.dead_letter(c, &Failure::default()).await.unwrap();
    }
    assert_eq!(spool.purge_dead(r).await.unwrap(), 2);
    let s = spool.stats(&[r], T0).await.unwrap();
    assert_eq!(s[r], super::RouteStats::default());
}

/// `max_entries = 4`: the fifth is refused as full until one is delivered; dead letters count.
pub(crate) async fn check_full(spool: &Spool) {
    let r = "full";
    for i in 0..4 {
        spool
            .enqueue(entry(r, &format!("f{i}"), b"x"))
            .await
            .unwrap();
    }
    assert!(matches!(
        spool.enqueue(entry(r, "f4", b"x")).await,
        Err(QueueError::Full)
    ));
    let c = spool.claim(r, "w", 2, T0).await.unwrap();
    spool.dead_letter(&c[1], &Failure::default()).await.unwrap();
    assert!(matches!(
        spool.enqueue(entry(r, "f4", b"x")).await,
        Err(QueueError::Full)
    ));
    spool.ack(&c[0]).await.unwrap();
    spool.enqueue(entry(r, "f4", b"x")).await.unwrap();
    assert_eq!(spool.purge_dead(r).await.unwrap(), 1);
    spool.enqueue(entry(r, "f5", b"x")).await.unwrap();
}
