//! Credentials: password hashing (argon2id) and API key secrets.
//!
//! API key secrets are 32 random bytes shown once as `tly_<hex>`; only their
//! SHA-256 is stored (a key is high-entropy, so a slow hash adds nothing but
//! latency to every request). Passwords are low-entropy and get argon2id.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A password hash string (PHC format). Deliberately not `Serialize`.
#[derive(Clone)]
pub struct PasswordHashString(pub String);

impl std::fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHashString(..)")
    }
}

pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("passwords must be at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("could not hash the password")]
    Hash,
}

pub fn hash_password(password: &str) -> Result<PasswordHashString, CredentialError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(CredentialError::TooShort);
    }
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| PasswordHashString(h.to_string()))
        .map_err(|_| CredentialError::Hash)
}

/// Constant-time check of a password against a stored hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// At most this many argon2 computations run at once (one per core): a
/// burst of sign-ins queues here instead of starving the async workers or
/// the machine.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
});

/// [`verify_password`] on a blocking thread, bounded by [`HASHING`].
pub async fn verify_password_off_thread(password: String, stored: String) -> bool {
    let Ok(_permit) = HASHING.acquire().await else { return false };
    tokio::task::spawn_blocking(move || verify_password(&password, &stored)).await.unwrap_or(false)
}

/// [`hash_password`] on a blocking thread, bounded by [`HASHING`].
pub async fn hash_password_off_thread(password: String) -> Result<PasswordHashString, CredentialError> {
    let _permit = HASHING.acquire().await.map_err(|_| CredentialError::Hash)?;
    tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(|_| CredentialError::Hash)?
}

/// A new API key: the secret (shown once), its public prefix, and its hash.
pub struct NewKeySecret {
    pub secret: String,
    pub prefix: String,
    pub hash: String,
}

pub fn new_api_key_secret() -> NewKeySecret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("tly_{}", hex::encode(bytes));
    NewKeySecret { prefix: secret[..12].to_string(), hash: hash_token(&secret), secret }
}

/// SHA-256 hex of a high-entropy token (API keys, session ids).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random opaque token (session ids).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h.0));
        assert!(!verify_password("wrong horse!", &h.0));
        assert!(!verify_password("x", "not a hash"));
        assert!(matches!(hash_password("short"), Err(CredentialError::TooShort)));
        assert_eq!(format!("{h:?}"), "PasswordHashString(..)");
    }

    #[test]
    fn api_keys_are_random_and_hashed() {
        let a = new_api_key_secret();
        let b = new_api_key_secret();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("tly_") && a.secret.len() == 68);
        assert_eq!(a.hash, hash_token(&a.secret));
        assert!(a.secret.starts_with(&a.prefix));
    }
}
