//! Signing in and out, sessions, password changes.
//!
//! Sessions live in the database (any instance can check any session);
//! failed sign-ins are rate-limited per email and per address, also from
//! the database, so the limit holds across instances.

use chrono::{DateTime, Duration, Utc};

use super::Engine;
use crate::server::auth::{hash_password, hash_token, random_token, verify_password};
use crate::server::error::{AppError, AppResult};
use crate::server::store::sessions;
use crate::server::store::users::{self, User};

pub const SESSION_DAYS: i64 = 7;
/// Failed attempts allowed per email (and 4× per address) in the window.
pub const MAX_FAILURES: i64 = 5;
pub const FAILURE_WINDOW_MINUTES: i64 = 15;

/// A stand-in hash so that unknown emails cost as much time as wrong
/// passwords (no user enumeration by timing).
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("not-a-real-password").map(|h| h.0).unwrap_or_default());

impl Engine {
    /// Checks the credentials and opens a session; returns the user and the
    /// session token for the cookie.
    pub async fn login(&self, email: &str, password: &str, ip: &str, now: DateTime<Utc>) -> AppResult<(User, String)> {
        let email = email.trim().to_lowercase();
        let mut conn = self.store.pool().acquire().await?;
        let since = now - Duration::minutes(FAILURE_WINDOW_MINUTES);
        let (by_email, by_ip) = sessions::recent_failures(&mut conn, &email, ip, since).await?;
        if by_email >= MAX_FAILURES || by_ip >= MAX_FAILURES * 4 {
            return Err(AppError::LimitReached {
                message: format!("Too many failed sign-in attempts. Try again in {FAILURE_WINDOW_MINUTES} minutes."),
                retry_after_secs: FAILURE_WINDOW_MINUTES * 60,
                body: None,
            });
        }
        let user = users::user_by_email(&mut conn, &email).await?;
        let stored = match &user {
            Some(u) => users::password_hash(&mut conn, &u.id).await?,
            None => None,
        };
        let ok = verify_password(password, stored.as_deref().unwrap_or(DUMMY_HASH.as_str())) && stored.is_some();
        sessions::record_attempt(&mut conn, &email, ip, ok, now).await?;
        let Some(user) = user.filter(|_| ok) else {
            return Err(AppError::InvalidCredentials);
        };
        let token = random_token();
        sessions::insert_session(&mut conn, &hash_token(&token), &user.id, now, now + Duration::days(SESSION_DAYS))
            .await?;
        tracing::info!(user = %user.id, "signed in");
        Ok((user, token))
    }

    /// The signed-in user of a session token, if the session is live.
    pub async fn session_user(&self, token: &str, now: DateTime<Utc>) -> AppResult<Option<User>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(sessions::session_user(&mut conn, &hash_token(token), now).await?)
    }

    pub async fn logout(&self, token: &str) -> AppResult<()> {
        let mut conn = self.store.pool().acquire().await?;
        sessions::delete_session(&mut conn, &hash_token(token)).await?;
        Ok(())
    }

    /// Changes the password after checking the current one; other sessions
    /// of the user end, the one making the change stays.
    pub async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
        session_token: &str,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let mut conn = self.store.pool().acquire().await?;
        let stored = users::password_hash(&mut conn, user_id).await?;
        if !stored.as_deref().is_some_and(|h| verify_password(current, h)) {
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
        let hash =
            hash_password(new).map_err(|e| AppError::InvalidFields(vec![("new_password".into(), e.to_string())]))?;
        users::set_password_hash(&mut conn, user_id, &hash.0, now).await?;
        sessions::delete_other_sessions(&mut conn, user_id, &hash_token(session_token)).await?;
        crate::server::store::keys::audit(
            &mut conn,
            &format!("user:{user_id}"),
            "user.password_change",
            ("user", user_id),
            None,
            None,
            now,
        )
        .await?;
        Ok(())
    }
}
