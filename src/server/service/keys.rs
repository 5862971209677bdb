//! API keys: creation (secret shown once, stored hashed) and revocation.

use chrono::{DateTime, Utc};

use super::Engine;
use super::audit;
use crate::domain::identity::{ApiKey, Scope, UserId};
use crate::server::auth::new_api_key_secret;
use crate::server::error::{AppError, AppResult};
use crate::server::store::keys;
use crate::server::store::users;
use crate::server::store::view::{Stamp, UsageView};
use crate::server::views::admin::KeyView;

impl Engine {
    /// The live key whose secret this is (not revoked, its user not
    /// disabled). Records its last use to the minute, so a busy key does not
    /// cost a database write per request.
    ///
    /// Answered from the process's copy of keys when it has one (see
    /// [`KeyCache`]): a revocation, or a disabled user, on this process
    /// counts at once; on another node sharing the database, within the
    /// cache lifetime.
    pub async fn api_key_by_secret(&self, secret: &str, now: DateTime<Utc>) -> AppResult<Option<ApiKey>> {
        let hash = crate::server::auth::hash_token(secret);
        let view = self.store.view();
        let stamp = view.stamp();
        let key = match self.keys.get(&hash, view) {
            Some(key) => key,
            None => {
                let mut conn = self.store.pool().acquire().await?;
                let Some(key) = keys::key_by_hash(&mut conn, &hash).await? else {
                    return Ok(None);
                };
                self.keys.put(&hash, &key, stamp)
            }
        };
        let stale = key.last_used_at.is_none_or(|t| now - t > chrono::Duration::minutes(1));
        if stale && self.key_touches.lock().expect("key touches lock").insert(key.id.clone()) {
            self.keys.note_use(&hash, now);
            // `last_used_at` is informational (to the minute): written off the
            // request path, in its turn among the writers, so a request never
            // waits for it; one write per key at a time, however many
            // concurrent requests saw it stale before the first committed.
            let (store, id, pending) = (self.store.clone(), key.id.clone(), self.key_touches.clone());
            tokio::spawn(async move {
                let touched = async {
                    let mut tx = store.begin().await?;
                    tx.affects(crate::server::store::view::Affects::NothingCached);
                    keys::touch_key(&mut tx, &id, now).await?;
                    tx.commit().await
                };
                if let Err(e) = touched.await {
                    tracing::debug!(error = %e, key = %id, "could not note the key's last use");
                }
                pending.lock().expect("key touches lock").remove(&id);
            });
        }
        Ok(Some(key))
    }

    /// Creates a key for `user_id` (or for no user: a service key). Returns
    /// the stored key and the secret, which is not kept.
    pub async fn create_api_key(
        &self,
        user_id: Option<&UserId>,
        scopes: &[Scope],
        name: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<(ApiKey, String)> {
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            return Err(AppError::Invalid(format!("give at least one scope of {}", all.join(", "))));
        }
        if user_id.is_none() && scopes.contains(&Scope::Proxy) {
            return Err(AppError::Invalid(
                "a key with the proxy scope must be bound to a user: the proxy bills that user's calls".into(),
            ));
        }
        let mut tx = self.store.begin().await?;
        let user_id = match user_id {
            Some(u) => Some(
                users::user_by_id(&mut tx, u)
                    .await?
                    .ok_or_else(|| AppError::NotFound(format!("no user with id `{u}`")))?
                    .id,
            ),
            None => None,
        };
        let secret = new_api_key_secret();
        let key = ApiKey {
            id: uuid::Uuid::new_v4().to_string(),
            prefix: secret.prefix.clone(),
            user_id,
            scopes,
            name: name.trim().to_string(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        keys::insert_key(&mut tx, &key, &secret.hash, Some(actor)).await?;
        let after = KeyView::from(&key);
        audit::record(&mut tx, actor, "api_key.create", ("api_key", &key.id), audit::NONE, Some(&after), now).await?;
        tx.commit().await?;
        Ok((key, secret.secret))
    }

    /// As [`Engine::create_api_key`], naming the user by email (the CLI).
    pub async fn create_api_key_by_email(
        &self,
        email: Option<&str>,
        scopes: &[Scope],
        name: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<(ApiKey, String)> {
        let user_id = match email {
            Some(e) => {
                let mut conn = self.store.pool().acquire().await?;
                Some(
                    users::user_by_email(&mut conn, e)
                        .await?
                        .ok_or_else(|| AppError::NotFound(format!("no user with email `{e}`")))?
                        .id,
                )
            }
            None => None,
        };
        self.create_api_key(user_id.as_ref(), scopes, name, actor, now).await
    }
}

/// The process's copy of live API keys, by the hash of their secret, so a
/// request does not read its key from the database. An entry is used while
/// the store's write epoch is the one it was read at (any revocation, role
/// change or disabled user on this process moves it) and for at most the
/// store's cache lifetime (the bound for such writes on another node).
/// Unknown secrets are never kept: a stream of made-up keys fills nothing.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedKey>>,
}

#[derive(Debug)]
struct CachedKey {
    key: ApiKey,
    stamp: Stamp,
}

/// Keys kept before the cache starts over.
const MAX_CACHED_KEYS: usize = 10_000;

impl KeyCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, CachedKey>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, hash: &str, view: &UsageView) -> Option<ApiKey> {
        let entries = self.entries();
        let c = entries.get(hash)?;
        view.is_fresh(&c.stamp).then(|| c.key.clone())
    }

    /// Keeps `key`, read at `stamp`; returns the copy kept.
    fn put(&self, hash: &str, key: &ApiKey, stamp: Stamp) -> ApiKey {
        let mut entries = self.entries();
        if entries.len() >= MAX_CACHED_KEYS {
            entries.clear();
        }
        let mut key = key.clone();
        // A use noted on the copy a concurrent read put first is kept: this
        // read may have started before that use's write was queued.
        if let Some(noted) = entries.get(hash).and_then(|c| c.key.last_used_at) {
            key.last_used_at = key.last_used_at.max(Some(noted));
        }
        entries.insert(hash.to_string(), CachedKey { key: key.clone(), stamp });
        key
    }

    /// The copy's last use, once a write of it is queued: without this,
    /// every request would find the copy stale and queue another.
    fn note_use(&self, hash: &str, now: DateTime<Utc>) {
        if let Some(c) = self.entries().get_mut(hash) {
            c.key.last_used_at = Some(now);
        }
    }
}
