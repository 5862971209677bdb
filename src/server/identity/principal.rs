//! Who is calling: resolved once per request from `Authorization: Bearer`
//! (an API key) or the session cookie, through the services, and checked on
//! the server by every handler.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::Utc;

use crate::domain::identity::{Role, Scope, UserId};
use crate::server::error::AppError;
use crate::server::state::AppState;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    /// A signed-in person.
    User {
        id: UserId,
        role: Role,
    },
    /// An API key, optionally acting for one user.
    Key {
        id: String,
        user_id: Option<UserId>,
        scopes: Vec<Scope>,
    },
}

impl Principal {
    pub fn has_scope(&self, scope: Scope) -> bool {
        matches!(self, Principal::Key { scopes, .. } if scopes.contains(&scope))
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::User { role: Role::Admin, .. }) || self.has_scope(Scope::Admin)
    }

    fn require_known(&self) -> Result<(), AppError> {
        match self {
            Principal::Anonymous => Err(AppError::Unauthorized),
            _ => Ok(()),
        }
    }

    /// Admin operations: an admin, or a key with the `admin` scope.
    pub fn require_admin(&self) -> Result<(), AppError> {
        self.require_known()?;
        if self.is_admin() { Ok(()) } else { Err(AppError::Forbidden("this needs an administrator".into())) }
    }

    /// Whether this principal may act on `user_id`'s account with one of
    /// `scopes`: that user signed in, an admin, or a key holding one of the
    /// scopes (bound to that user, if bound at all). The one rule behind
    /// every `require_*` about a user.
    fn acts_for(&self, user_id: &str, scopes: &[Scope]) -> bool {
        match self {
            Principal::User { id, role } => *role == Role::Admin || id.as_str() == user_id,
            Principal::Key { user_id: bound, .. } => {
                self.is_admin()
                    || (scopes.iter().any(|s| self.has_scope(*s))
                        && bound.as_ref().is_none_or(|b| b.as_str() == user_id))
            }
            Principal::Anonymous => false,
        }
    }

    /// Authorises first, then parses: a malformed id names no user (404),
    /// but only someone who could act for any user learns that.
    fn require_acting_for(&self, user_id: &str, scopes: &[Scope], refusal: &str) -> Result<UserId, AppError> {
        self.require_known()?;
        if !self.acts_for(user_id, scopes) {
            return Err(AppError::Forbidden(refusal.into()));
        }
        user_named(user_id)
    }

    /// An administrator acting on `user_id`'s account; answers the id,
    /// parsed.
    pub fn require_admin_over(&self, user_id: &str) -> Result<UserId, AppError> {
        self.require_admin()?;
        user_named(user_id)
    }

    /// Reading `user_id`'s billing: that user, an admin, or a key with the
    /// `read` scope (a key bound to a user reads only that user). Answers
    /// the id, parsed.
    pub fn require_read(&self, user_id: &str) -> Result<UserId, AppError> {
        self.require_acting_for(user_id, &[Scope::Read], "you may not read this user's billing")
    }

    /// Holding usage against `user_id`'s limits (a preflight with
    /// `reserve`): that user signed in, an admin, or a key with the `gate` or
    /// `ingest` scope.
    pub fn require_gate(&self, user_id: &str) -> Result<UserId, AppError> {
        self.require_acting_for(
            user_id,
            &[Scope::Gate, Scope::Ingest],
            "holding usage needs an API key with the gate or ingest scope",
        )
    }

    /// Marking `user_id`'s alerts read: that user signed in, an admin, or a
    /// key with the `alerts` scope.
    pub fn require_write_alerts(&self, user_id: &str) -> Result<UserId, AppError> {
        self.require_acting_for(user_id, &[Scope::Alerts], "marking alerts read needs an API key with the alerts scope")
    }

    /// Marking an alert read, given its owner: the owner's alerts as
    /// [`Principal::require_write_alerts`]; admin alerts (`None`) an admin.
    pub fn require_alert_writer(&self, owner: Option<&str>) -> Result<(), AppError> {
        match owner {
            Some(user_id) => self.require_write_alerts(user_id).map(|_| ()),
            None => self.require_admin(),
        }
    }

    /// Recording usage: a key with the `ingest` scope. A key bound to a
    /// user may record only that user's events (checked per event).
    pub fn require_ingest(&self) -> Result<(), AppError> {
        self.require_known()?;
        if self.has_scope(Scope::Ingest) {
            Ok(())
        } else {
            Err(AppError::Forbidden("recording usage needs an API key with the ingest scope".into()))
        }
    }

    /// Monitoring: an admin, or a key with the `metrics` scope.
    pub fn require_metrics(&self) -> Result<(), AppError> {
        self.require_known()?;
        if self.is_admin() || self.has_scope(Scope::Metrics) {
            Ok(())
        } else {
            Err(AppError::Forbidden("monitoring needs an API key with the metrics or admin scope".into()))
        }
    }

    /// The user an ingest key is bound to, if any.
    pub fn bound_user(&self) -> Option<&str> {
        match self {
            Principal::Key { user_id, .. } => user_id.as_ref().map(UserId::as_str),
            _ => None,
        }
    }

    /// The user this principal is, for endpoints about "the caller".
    pub fn own_user(&self) -> Option<&UserId> {
        match self {
            Principal::User { id, .. } => Some(id),
            Principal::Key { user_id, .. } => user_id.as_ref(),
            Principal::Anonymous => None,
        }
    }

    /// Audit-log name of the actor.
    pub fn actor(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::User { id, .. } => format!("user:{id}"),
            Principal::Key { id, .. } => format!("key:{id}"),
        }
    }
}

/// The user a path or form names: an id that is not a [`UserId`] names
/// nobody.
pub fn user_named(user_id: &str) -> Result<UserId, AppError> {
    UserId::parse(user_id).map_err(|_| AppError::NotFound(format!("no user with id `{user_id}`")))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Resolved already by the policy layer for this request.
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            // A browser session, if the cookie names a live one.
            let Some(token) = super::cookies::token_from(&parts.headers) else { return Ok(Principal::Anonymous) };
            return Ok(match state.engine.session_user(&token, Utc::now()).await? {
                Some(u) => Principal::User { id: u.id, role: u.role },
                None => Principal::Anonymous,
            });
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(AppError::Unauthorized)?;
        let key = state.engine.api_key_by_secret(token, Utc::now()).await?.ok_or(AppError::Unauthorized)?;
        Ok(Principal::Key { id: key.id, user_id: key.user_id, scopes: key.scopes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: Option<&str>, scopes: &[Scope]) -> Principal {
        Principal::Key { id: "k".into(), user_id: user.map(|u| UserId::parse(u).unwrap()), scopes: scopes.to_vec() }
    }

    #[test]
    fn authorization_table() {
        let user_a = Principal::User { id: UserId::parse("a").unwrap(), role: Role::User };
        let admin = Principal::User { id: UserId::parse("x").unwrap(), role: Role::Admin };
        let cases: Vec<(&str, Principal, bool, bool, bool)> = vec![
            // name, principal, read a, read b, ingest
            ("anonymous", Principal::Anonymous, false, false, false),
            ("user a", user_a, true, false, false),
            ("admin", admin, true, true, false),
            ("ingest key", key(None, &[Scope::Ingest]), false, false, true),
            ("read key", key(None, &[Scope::Read]), true, true, false),
            ("read key bound to a", key(Some("a"), &[Scope::Read]), true, false, false),
            ("admin key", key(None, &[Scope::Admin]), true, true, false),
        ];
        for (name, p, a, b, ingest) in cases {
            assert_eq!(p.require_read("a").is_ok(), a, "{name} read a");
            assert_eq!(p.require_read("b").is_ok(), b, "{name} read b");
            assert_eq!(p.require_ingest().is_ok(), ingest, "{name} ingest");
        }
        assert!(matches!(Principal::Anonymous.require_read("a"), Err(AppError::Unauthorized)));
    }
}
