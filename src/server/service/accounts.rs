//! Signing in and out, sessions, password changes.
//!
//! Sessions live in the database (any instance can check any session) and
//! end when idle for `session_idle` or `session_max` after sign-in; failed
//! sign-ins are throttled per (email, address) and per address, also in the
//! database, so the limits hold across instances.

use chrono::{DateTime, Duration, Utc};

use super::Engine;
use super::audit;
use crate::domain::identity::{Role, User, UserId};
use crate::server::auth::{
    hash_password, hash_password_off_thread, hash_token, random_token, verify_password_off_thread,
};
use crate::server::error::{AppError, AppResult};
use crate::server::store::sessions;
use crate::server::store::users;

/// Sign-in attempts one (email, address) pair may fail before back-off.
pub const FREE_FAILURES: i64 = 5;
/// Failures from one address, across all emails, before back-off.
pub const FREE_FAILURES_PER_ADDRESS: i64 = 30;
/// Failures older than this are forgotten.
pub const FAILURE_WINDOW_MINUTES: i64 = 15;
/// Sign-in attempt records are kept this long (for the audit of attacks).
pub const ATTEMPT_RETENTION_DAYS: i64 = 7;
/// A session's last-seen time is written at most this often.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// The key of the address-wide counter in `login_throttle`.
const ANY_EMAIL: &str = "*";

/// A stand-in hash so that unknown emails cost as much time as wrong
/// passwords (no user enumeration by timing).
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("not-a-real-password").map(|h| h.0).unwrap_or_default());

/// How long a (email, address) pair with `failures` failures must wait after
/// its last failure: nothing for the first [`FREE_FAILURES`] (`free`), then
/// 30 s doubling per failure, at most the failure window.
pub fn backoff(failures: i64, free: i64) -> Duration {
    if failures < free {
        return Duration::zero();
    }
    let doublings = (failures - free).min(10) as u32;
    Duration::seconds(30 * 2i64.pow(doublings)).min(Duration::minutes(FAILURE_WINDOW_MINUTES))
}

impl Engine {
    /// Checks the credentials and opens a session; returns the user and the
    /// session token for the cookie.
    ///
    /// The attempt is counted *before* the password is checked, atomically
    /// per (email, address) and per address, so a parallel burst gets no
    /// more guesses than a serial one; a success clears the pair's count.
    /// Counting per pair means a stranger failing from elsewhere cannot lock
    /// the owner out.
    pub async fn login(&self, email: &str, password: &str, ip: &str, now: DateTime<Utc>) -> AppResult<(User, String)> {
        let email = email.trim().to_lowercase();
        let ip = if ip.is_empty() { "unknown" } else { ip };
        // Writes go through write transactions (on SQLite, the process's
        // write group) rather than autocommit, which would wait in SQLite's
        // busy handler behind the open group.
        let mut tx = self.store.begin().await?;
        tx.affects(crate::server::store::view::Affects::NothingCached);
        for (key, free) in [(email.as_str(), FREE_FAILURES), (ANY_EMAIL, FREE_FAILURES_PER_ADDRESS)] {
            if let Err(wait) = self.claim_attempt(&mut tx, key, ip, free, now).await? {
                sessions::record_attempt(&mut tx, &email, ip, false, now).await?;
                tx.commit().await?;
                let secs = ((wait.num_milliseconds() + 999) / 1000).max(1);
                return Err(AppError::LimitReached {
                    message: format!("Too many failed sign-in attempts. Try again in {}.", human_wait(secs)),
                    retry_after_secs: secs,
                    body: None,
                });
            }
        }
        let user = users::user_by_email(&mut tx, &email).await?;
        let stored = match &user {
            Some(u) => users::password_hash(&mut tx, &u.id).await?,
            None => None,
        };
        tx.commit().await?;
        let hash = stored.clone().unwrap_or_else(|| DUMMY_HASH.clone());
        let ok = verify_password_off_thread(password.to_string(), hash).await && stored.is_some();
        let mut tx = self.store.begin().await?;
        tx.affects(crate::server::store::view::Affects::NothingCached);
        sessions::record_attempt(&mut tx, &email, ip, ok, now).await?;
        let Some(user) = user.filter(|_| ok) else {
            tx.commit().await?;
            return Err(AppError::InvalidCredentials);
        };
        // Said only to someone who knows the password.
        if users::disabled_at(&mut tx, &user.id).await?.is_some() {
            tx.commit().await?;
            return Err(AppError::Forbidden("this account is disabled; ask an administrator".into()));
        }
        sessions::clear_throttle(&mut tx, &email, ANY_EMAIL, ip).await?;
        let token = random_token();
        sessions::insert_session(&mut tx, &hash_token(&token), &user.id, now, now + self.config.session_max).await?;
        tx.commit().await?;
        tracing::info!(user = %user.id, "signed in");
        Ok((user, token))
    }

    /// Counts one attempt for (`key`, `ip`) unless it must wait; `Err(wait)`
    /// when it must. Compare-and-set on the counter row, so concurrent
    /// attempts each take their own slot.
    async fn claim_attempt(
        &self,
        conn: &mut sqlx::AnyConnection,
        key: &str,
        ip: &str,
        free: i64,
        now: DateTime<Utc>,
    ) -> AppResult<Result<(), Duration>> {
        let window = Duration::minutes(FAILURE_WINDOW_MINUTES);
        for _ in 0..8 {
            let current = sessions::throttle(conn, key, ip).await?;
            let (failures, last) = match current {
                Some((f, last)) if now - last < window => (f, Some(last)),
                Some((_, last)) => (0, Some(last)),
                None => (0, None),
            };
            if let Some(last) = last {
                let wait = backoff(failures, free) - (now - last);
                if failures >= free && wait > Duration::zero() {
                    return Ok(Err(wait));
                }
            }
            if sessions::claim_throttle(conn, key, ip, current, failures + 1, now).await? {
                return Ok(Ok(()));
            }
        }
        // Lost the race eight times: someone is hammering this pair.
        Ok(Err(Duration::seconds(30)))
    }

    /// The signed-in user of a session token, if the session is live: not
    /// past its absolute lifetime and not idle longer than allowed.
    pub async fn session_user(&self, token: &str, now: DateTime<Utc>) -> AppResult<Option<User>> {
        let mut conn = self.store.pool().acquire().await?;
        let id_hash = hash_token(token);
        let Some((user, last_seen)) =
            sessions::session_user(&mut conn, &id_hash, now, now - self.config.session_idle).await?
        else {
            return Ok(None);
        };
        drop(conn);
        if now - last_seen >= TOUCH_EVERY {
            let mut tx = self.store.begin().await?;
            tx.affects(crate::server::store::view::Affects::NothingCached);
            sessions::touch_session(&mut tx, &id_hash, now).await?;
            tx.commit().await?;
        }
        Ok(Some(user))
    }

    pub async fn logout(&self, token: &str) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        tx.affects(crate::server::store::view::Affects::NothingCached);
        sessions::delete_session(&mut tx, &hash_token(token)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of a user (an admin's "sign out everywhere").
    pub async fn sign_out_everywhere(&self, user_id: &UserId, actor: &str, now: DateTime<Utc>) -> AppResult<u64> {
        let mut tx = self.store.begin().await?;
        tx.affects(crate::server::store::view::Affects::NothingCached);
        if users::user_by_id(&mut tx, user_id).await?.is_none() {
            return Err(AppError::NotFound(format!("no user with id `{user_id}`")));
        }
        let ended = sessions::delete_user_sessions(&mut tx, user_id).await?;
        audit::record(
            &mut tx,
            actor,
            "user.sign_out_everywhere",
            ("user", user_id),
            audit::NONE,
            Some(&serde_json::json!({"sessions_ended": ended})),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Disables or enables an account. Disabling ends its sessions, and its
    /// bound API keys stop working; the last active administrator cannot be
    /// disabled.
    pub async fn set_account_disabled(
        &self,
        user_id: &UserId,
        disabled: bool,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        let user = users::user_by_id(&mut tx, user_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user with id `{user_id}`")))?;
        let was = users::disabled_at(&mut tx, user_id).await?;
        if was.is_some() == disabled {
            return Err(AppError::Conflict(format!(
                "the account is already {}",
                if disabled { "disabled" } else { "enabled" }
            )));
        }
        if disabled && user.role == Role::Admin && users::active_admins(&mut tx).await? <= 1 {
            return Err(AppError::Conflict("the last active administrator cannot be disabled".into()));
        }
        users::set_disabled(&mut tx, user_id, disabled.then_some(now), now).await?;
        if disabled {
            sessions::delete_user_sessions(&mut tx, user_id).await?;
        }
        audit::record(
            &mut tx,
            actor,
            if disabled { "user.disable" } else { "user.enable" },
            ("user", user_id),
            Some(&serde_json::json!({"disabled": was.is_some()})),
            Some(&serde_json::json!({"disabled": disabled})),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether an account is disabled.
    pub async fn account_disabled(&self, user_id: &UserId) -> AppResult<bool> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(users::disabled_at(&mut conn, user_id).await?.is_some())
    }

    /// Changes a user's role; the last active administrator keeps theirs.
    pub async fn set_user_role(&self, user_id: &UserId, role: Role, actor: &str, now: DateTime<Utc>) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        let user = users::user_by_id(&mut tx, user_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user with id `{user_id}`")))?;
        if user.role == role {
            return Err(AppError::Conflict(format!("`{user_id}` is already {}", role.as_str())));
        }
        if user.role == Role::Admin
            && users::disabled_at(&mut tx, user_id).await?.is_none()
            && users::active_admins(&mut tx).await? <= 1
        {
            return Err(AppError::Conflict("the last active administrator must stay an administrator".into()));
        }
        users::set_role(&mut tx, user_id, role, now).await?;
        audit::record(
            &mut tx,
            actor,
            "user.role",
            ("user", user_id),
            Some(&serde_json::json!({"role": user.role.as_str()})),
            Some(&serde_json::json!({"role": role.as_str()})),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes ended sessions, old sign-in attempts and stale throttle rows,
    /// and holds that no longer count (consumed or expired); how many of
    /// each.
    pub async fn prune_stale(&self, now: DateTime<Utc>) -> AppResult<(u64, u64, u64)> {
        let mut tx = self.store.begin().await?;
        tx.affects(crate::server::store::view::Affects::NothingCached);
        let sessions = sessions::prune_sessions(&mut tx, now, now - self.config.session_idle).await?;
        let attempts = sessions::prune_attempts(
            &mut tx,
            now - Duration::days(ATTEMPT_RETENTION_DAYS),
            now - Duration::minutes(FAILURE_WINDOW_MINUTES),
        )
        .await?;
        let holds = crate::server::store::holds::prune_holds(&mut tx, now).await?;
        tx.commit().await?;
        Ok((sessions, attempts, holds))
    }

    /// Changes the password after checking the current one; other sessions
    /// of the user end, the one making the change stays.
    pub async fn change_password(
        &self,
        user_id: &UserId,
        current: &str,
        new: &str,
        session_token: &str,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let mut conn = self.store.pool().acquire().await?;
        let stored = users::password_hash(&mut conn, user_id).await?;
        let matches = match stored {
            Some(h) => verify_password_off_thread(current.to_string(), h).await,
            None => false,
        };
        if !matches {
            return Err(AppError::InvalidFields(vec![(
                "current_password".into(),
                "the current password is not right".into(),
            )]));
        }
        if new == current {
            return Err(AppError::InvalidFields(vec![(
                "new_password".into(),
                "choose a password different from the current one".into(),
            )]));
        }
        let hash = hash_password_off_thread(new.to_string())
            .await
            .map_err(|e| AppError::InvalidFields(vec![("new_password".into(), e.to_string())]))?;
        drop(conn);
        let mut tx = self.store.begin().await?;
        users::set_password_hash(&mut tx, user_id, &hash.0, now).await?;
        sessions::delete_other_sessions(&mut tx, user_id, &hash_token(session_token)).await?;
        audit::record(
            &mut tx,
            &format!("user:{user_id}"),
            "user.password_change",
            ("user", user_id),
            audit::NONE,
            audit::NONE,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// "2 minutes", "45 seconds".
fn human_wait(secs: i64) -> String {
    if secs >= 90 {
        let m = (secs + 59) / 60;
        format!("{m} minutes")
    } else {
        format!("{secs} seconds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0, 5), Duration::zero());
        assert_eq!(backoff(4, 5), Duration::zero());
        assert_eq!(backoff(5, 5), Duration::seconds(30));
        assert_eq!(backoff(6, 5), Duration::seconds(60));
        assert_eq!(backoff(9, 5), Duration::seconds(480));
        assert_eq!(backoff(10, 5), Duration::minutes(15));
        assert_eq!(backoff(1_000, 5), Duration::minutes(15));
        assert_eq!(human_wait(30), "30 seconds");
        assert_eq!(human_wait(900), "15 minutes");
    }
}
