//! The pipeline's side of handshakes (SPEC "Handshakes"): routes of a scheme with a GET
//! handshake accept that GET, and a verified SNS subscription confirmation is confirmed once
//! across replicas through the replay store.

use http::Method;

use super::{in_request_span, Ctx, Record, Verdict, INFLIGHT_MARGIN};
use crate::config::{OnStoreError, RouteConfig};
use crate::outcome::{Rejection, ReplayRefusal};
use crate::replay::{Begin, Key};
use crate::verify::{Confirmation, Handshake, Verified};

/// The methods a route is served for: its own, plus GET when its scheme has a GET handshake
/// (`meta`, `okta`, `x`, `dropbox`) and no other route of the same path lists GET. The
/// verdict refuses such a GET with 405 unless it is the handshake.
pub(super) fn with_handshake_get(cfg: &RouteConfig, all: &[RouteConfig]) -> Vec<Method> {
    let mut methods = cfg.methods.clone();
    let wants_get = cfg
        .scheme
        .as_ref()
        .is_some_and(|s| s.name().def().get_handshake.is_some());
    let taken = all
        .iter()
        .any(|r| r.path == cfg.path && r.methods.contains(&Method::GET));
    if wants_get && !taken && !methods.contains(&Method::GET) {
        methods.push(Method::GET);
    }
    methods
}

/// A verified SNS `SubscriptionConfirmation` under `confirm = "auto"`: the replica that
/// claims its `MessageId` in the replay store GETs the `SubscribeURL` (in a task of its own,
/// so a sender who hangs up cannot leave the id marked in flight); the others answer that it
/// is confirmed. The route's `dedupe` does not matter: the claim is what makes it once.
pub(super) async fn confirm(
    cx: &Ctx<'_>,
    verified: Verified,
    confirmation: Confirmation,
    rec: &mut Record<'_>,
) -> Verdict {
    let cfg = &cx.route.cfg;
    let confirmed = Verdict {
        handshake: Some(Handshake::json(&serde_json::json!({"status": "confirmed"}))),
        ..Verdict::default()
    };
    let Some(id) = verified.id.as_ref() else {
        return Verdict {
            failure: Some(Rejection::ConfirmFailed),
            ..Verdict::default()
        };
    };
    let key = Key::new(&cfg.name, id.as_bytes());
    let inflight_ttl = cx.snap.config.upstream.timeout + INFLIGHT_MARGIN;
    // `Some(key)`: this replica holds the claim; `None`: the store is down and
    // `on_store_error = "allow"` confirms without one (as a delivery would be forwarded).
    let claimed = match cx.route.replay.begin(&key, inflight_ttl).await {
        Ok(Begin::Fresh) => Some(key),
        // Another replica (or an earlier delivery) confirmed it.
        Ok(Begin::Duplicate) => return confirmed,
        Ok(Begin::InFlight) => return refused(ReplayRefusal::InFlight),
        Err(e) => {
            rec.store_error = Some(e.to_string());
            if cx.snap.config.replay.on_store_error != OnStoreError::Allow {
                return refused(ReplayRefusal::StoreUnavailable);
            }
            None
        }
    };
    let replay = cx.route.replay.clone();
    let done_ttl = cfg.tolerance * 2;
    let task = tokio::spawn(async move {
        let result = confirmation.await;
        let settled = match &claimed {
            Some(key) => replay.finish(key, result.is_ok(), done_ttl).await,
            None => Ok(()),
        };
        (result, settled.err().map(|e| e.to_string()))
    });
    let (result, settle_error) = task
        .await
        .unwrap_or_else(|_| (Err("confirmation task failed".to_owned()), None));
    if let Some(e) = settle_error {
        rec.store_error = Some(e);
    }
    match result {
        Ok(()) => confirmed,
        Err(why) => {
            in_request_span(
                cx.request_id,
                || tracing::warn!(route = %cfg.name, error = %why, "SNS subscription confirmation failed"),
            );
            Verdict {
                failure: Some(Rejection::ConfirmFailed),
                ..Verdict::default()
            }
        }
    }
}

fn refused(refusal: ReplayRefusal) -> Verdict {
    Verdict {
        failure: Some(Rejection::Replay(refusal)),
        ..Verdict::default()
    }
}
