//! The tracking proxy's call ids: claimed before the provider is called,
//! so a reused `x-tally-event-id` can never buy a second provider call for
//! the price of one, and kept alive (with the call's holds) while the call
//! runs.
//!
//! A caller's id `X` is recorded as `prx:<attempt>:X`: the first attempt
//! is `prx:1:X`. An id whose attempt was recorded as answered is refused
//! with that record; one whose attempt is still running (claimed or
//! renewed within the hold TTL) is refused as in flight; one whose attempt
//! failed (recorded with an error status) or was abandoned (a crash: never
//! recorded, not renewed within the hold TTL) is retried as the next
//! attempt, billed under its own id. Two retries racing, on one node or
//! two, move the attempt by compare-and-set: only one wins. Ids the proxy
//! makes itself (`prx_<uuid>`) and ids of ingested events (which may not
//! begin with `prx:` or `prx_`) can never meet these.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};

use super::Engine;
use crate::domain::money::Nanos;
use crate::server::error::AppResult;
use crate::server::store::claims;
use crate::server::store::view::Affects;

/// What became of a claim on a call id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Go ahead: this attempt is the caller's; record it as `event_id`.
    Granted { attempt: i64, event_id: String },
    /// The id's call was made and answered: its record.
    Answered { event_id: String, status: u16, cost: Nanos },
    /// A call with this id is running now.
    InFlight { event_id: String },
}

/// The event id of attempt `attempt` of the caller's id `call_id`.
pub fn attempt_event_id(call_id: &str, attempt: i64) -> String {
    format!("prx:{attempt}:{call_id}")
}

impl Engine {
    /// Claims the caller's `call_id` for a new provider call of `user_id`.
    pub async fn claim_proxy_call(&self, user_id: &UserId, call_id: &str, now: DateTime<Utc>) -> AppResult<Claim> {
        let stale_before = now - self.config.hold_span();
        let mut tx = self.store.begin_unsynced().await?;
        tx.affects(Affects::NothingCached);
        let claim = if claims::claim_first(&mut tx, user_id, call_id, now).await? {
            Claim::Granted { attempt: 1, event_id: attempt_event_id(call_id, 1) }
        } else {
            let (attempt, claimed_at) = claims::claim_of(&mut tx, user_id, call_id)
                .await?
                .expect("a claim that conflicted exists, and claims are never deleted");
            let event_id = attempt_event_id(call_id, attempt);
            let outcome = claims::event_outcome(&mut tx, user_id, &event_id).await?;
            match outcome {
                Some((status, cost)) if status < 400 => Claim::Answered { event_id, status, cost },
                // Failed, or abandoned: the next attempt, if no one else
                // takes it first.
                Some(_) => self.next_attempt(&mut tx, user_id, call_id, attempt, now).await?,
                None if claimed_at < stale_before => self.next_attempt(&mut tx, user_id, call_id, attempt, now).await?,
                None => Claim::InFlight { event_id },
            }
        };
        // A claim lost to a crash loses nothing: the call it would have
        // guarded was lost with it (see `WriteTx::commit_unsynced`).
        tx.commit_unsynced().await?;
        Ok(claim)
    }

    async fn next_attempt(
        &self,
        tx: &mut crate::server::store::WriteTx,
        user_id: &UserId,
        call_id: &str,
        seen: i64,
        now: DateTime<Utc>,
    ) -> AppResult<Claim> {
        Ok(if claims::claim_next(tx, user_id, call_id, seen, now).await? {
            Claim::Granted { attempt: seen + 1, event_id: attempt_event_id(call_id, seen + 1) }
        } else {
            Claim::InFlight { event_id: attempt_event_id(call_id, seen + 1) }
        })
    }

    /// Gives back an attempt refused before the provider was called (denied
    /// by a limit, say), so the caller may send the same id again at once.
    pub async fn abandon_proxy_call(&self, user_id: &UserId, call_id: &str, attempt: i64) -> AppResult<()> {
        let mut tx = self.store.begin_unsynced().await?;
        tx.affects(Affects::NothingCached);
        claims::touch(&mut tx, user_id, call_id, attempt, DateTime::UNIX_EPOCH).await?;
        tx.commit_unsynced().await?;
        Ok(())
    }

    /// Keeps a running proxied call's room and claim: its reservation's
    /// open holds now last until `now` plus the hold TTL, and its claim
    /// (if the caller named the call) counts as renewed now.
    pub async fn renew_proxy_call(
        &self,
        user_id: &UserId,
        reservation_id: Option<&str>,
        claim: Option<(&str, i64)>,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let until = now + self.config.hold_span();
        let mut tx = self.store.begin_unsynced().await?;
        tx.affects(Affects::Users(vec![user_id.to_string()]));
        if let Some(rid) = reservation_id {
            claims::extend_holds(&mut tx, user_id, rid, until, now).await?;
        }
        if let Some((call_id, attempt)) = claim {
            claims::touch(&mut tx, user_id, call_id, attempt, now).await?;
        }
        tx.commit_unsynced().await?;
        Ok(())
    }
}
