//! Who is who: user ids, email addresses, roles and API-key scopes, each
//! parsed once at the door into a type that cannot hold a bad value.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why an identity value was refused; the message is a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(pub String);

/// The host product's id for one of its users: 1 to 128 characters of
/// ASCII letters, digits and `- _ . @ :`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<UserId, IdentityError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@:".contains(c));
        if ok {
            Ok(UserId(raw.to_string()))
        } else {
            Err(IdentityError("`id` must be 1-128 characters of letters, digits and - _ . @ :".into()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address as people type it, trimmed: an `@`, no spaces, at most
/// 254 characters (deliberately loose: the only real check is a mail that
/// arrives). Sign-in compares it case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, IdentityError> {
        let s = raw.trim();
        let ok = s.len() <= 254 && !s.contains(char::is_whitespace) && s.contains('@');
        if ok { Ok(Email(s.to_string())) } else { Err(IdentityError(format!("`{s}` is not an email address"))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl TryFrom<String> for $t {
            type Error = IdentityError;
            fn try_from(s: String) -> Result<Self, IdentityError> {
                <$t>::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl std::str::FromStr for $t {
            type Err = IdentityError;
            fn from_str(s: &str) -> Result<Self, IdentityError> {
                <$t>::parse(s)
            }
        }
    };
}
string_newtype!(UserId);
string_newtype!(Email);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// What an API key may do. A key holds one or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Record usage events.
    Ingest,
    /// Read billing (usage, trends, alerts, logs).
    Read,
    /// Check and hold usage before a call (preflight with `reserve`).
    Gate,
    /// Mark alerts read.
    Alerts,
    /// Read monitoring.
    Metrics,
    /// Call providers through the tracking proxy (`/proxy/...`) as the
    /// key's user: gated, priced and recorded.
    Proxy,
    /// Everything an administrator may do.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 7] =
        [Scope::Ingest, Scope::Read, Scope::Gate, Scope::Alerts, Scope::Metrics, Scope::Proxy, Scope::Admin];

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Gate => "gate",
            Scope::Alerts => "alerts",
            Scope::Metrics => "metrics",
            Scope::Proxy => "proxy",
            Scope::Admin => "admin",
        }
    }

    /// A comma-separated list, as an operator types it (`read,gate`):
    /// duplicates removed, in the order of [`Scope::ALL`].
    pub fn parse_list(raw: &str) -> Result<Vec<Scope>, IdentityError> {
        let mut out = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let s = Scope::parse(part).ok_or_else(|| {
                let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                IdentityError(format!("`{part}` is not a scope (one of {})", all.join(", ")))
            })?;
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out.sort();
        Ok(out)
    }
}

impl std::str::FromStr for Scope {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Scope, IdentityError> {
        match Scope::parse_list(s)?.as_slice() {
            [one] => Ok(*one),
            _ => Err(IdentityError(format!("`{s}` is not a scope"))),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person who signs in, or a user of the host product Tally bills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// An API key's public side (the secret is only ever stored hashed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub prefix: String,
    /// The one user this key acts for, if bound.
    pub user_id: Option<UserId>,
    pub scopes: Vec<Scope>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids() {
        for ok in ["u1", "demo-user", "a.b@c:d_e", &"x".repeat(128)] {
            assert_eq!(UserId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "a b", "é", "a/b", &"x".repeat(129), "a\n"] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
        let id: UserId = serde_json::from_str("\"u1\"").unwrap();
        assert_eq!(id, "u1");
        assert!(serde_json::from_str::<UserId>("\"a b\"").is_err());
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"u1\"");
    }

    #[test]
    fn emails() {
        assert_eq!(Email::parse("  a@b.c ").unwrap().as_str(), "a@b.c");
        for bad in ["", "ab", "a b@c", &format!("{}@b.c", "x".repeat(251))] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_round_trip_and_lists() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse_list("gate, read,read").unwrap(), vec![Scope::Read, Scope::Gate]);
        assert_eq!(Scope::parse_list("").unwrap(), vec![]);
        let e = Scope::parse_list("read,write").unwrap_err().0;
        assert!(e.contains("`write` is not a scope"), "{e}");
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }
}
