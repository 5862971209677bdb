//! Sign-in, throttling and sessions against real stores (both).

use chrono::{Duration, Utc};

use super::Engine;
use super::accounts::{FAILURE_WINDOW_MINUTES, FREE_FAILURES};
use crate::both_stores;
use crate::domain::limits::Limits;
use crate::server::error::AppError;
use crate::server::service::admin::UserForm;
use crate::server::store::Store;
use crate::server::testing::{engine_with_catalog, t, uid};

async fn with_user(store: Store) -> Engine {
    let (engine, _) = engine_with_catalog(store, Limits::new(), t(2026, 1, 1)).await;
    let form = UserForm {
        id: Some("s".into()),
        email: "S@Example.test".into(),
        name: "S".into(),
        role: crate::domain::identity::Role::User,
        password: Some("right-password".into()),
        timezone: None,
    };
    engine.admin_create_user(form, "test", Utc::now()).await.unwrap();
    engine
}

/// Failures from one address cannot lock the owner out from another; the
/// address itself backs off, and recovers.
async fn sign_in_throttles_per_email_and_address(store: Store) {
    let engine = with_user(store).await;
    let now = Utc::now();
    let (_, token) = engine.login("s@example.test", "right-password", "10.0.0.1", now).await.unwrap();
    assert_eq!(engine.session_user(&token, now).await.unwrap().unwrap().id, "s");
    engine.logout(&token).await.unwrap();
    assert!(engine.session_user(&token, now).await.unwrap().is_none());
    assert!(matches!(
        engine.login("nobody@example.test", "x", "10.0.0.1", now).await,
        Err(AppError::InvalidCredentials)
    ));
    for _ in 0..FREE_FAILURES {
        assert!(matches!(
            engine.login("s@example.test", "wrong", "203.0.113.9", now).await,
            Err(AppError::InvalidCredentials)
        ));
    }
    // The attacker's address now waits, even with the right password...
    match engine.login("s@example.test", "right-password", "203.0.113.9", now).await {
        Err(AppError::LimitReached { retry_after_secs, .. }) => assert_eq!(retry_after_secs, 30),
        other => panic!("expected a back-off, got {other:?}"),
    }
    // ...but the owner, elsewhere, signs in at once.
    assert!(engine.login("s@example.test", "right-password", "198.51.100.7", now).await.is_ok());
    // After the back-off one more guess is allowed, and the wait doubles.
    let later = now + Duration::seconds(31);
    assert!(matches!(
        engine.login("s@example.test", "wrong", "203.0.113.9", later).await,
        Err(AppError::InvalidCredentials)
    ));
    match engine.login("s@example.test", "wrong", "203.0.113.9", later).await {
        Err(AppError::LimitReached { retry_after_secs, .. }) => assert_eq!(retry_after_secs, 60),
        other => panic!("expected a longer back-off, got {other:?}"),
    }
    // Once the window has passed, the count is forgotten.
    let much_later = later + Duration::minutes(FAILURE_WINDOW_MINUTES + 1);
    assert!(engine.login("s@example.test", "right-password", "203.0.113.9", much_later).await.is_ok());
}
both_stores!(sign_in_throttles_per_email_and_address, sign_in_throttles_per_email_and_address);

/// A parallel burst of guesses gets no more than the serial allowance: each
/// attempt is counted before its password is checked.
async fn parallel_guesses_get_no_extra_tries(store: Store) {
    let engine = with_user(store.clone()).await;
    let now = Utc::now();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.login("s@example.test", &format!("guess-{i}"), "203.0.113.9", now).await })
        })
        .collect();
    let mut checked = 0;
    for t in tasks {
        match t.await.unwrap() {
            Err(AppError::InvalidCredentials) => checked += 1,
            Err(AppError::LimitReached { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(checked, FREE_FAILURES, "only the free attempts reached the password check");
    let recorded = crate::server::service::tests::scalar(
        &store,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM login_attempts WHERE email = 's@example.test'",
    )
    .await;
    assert_eq!(recorded, 40, "every attempt is on record");
}
both_stores!(parallel_guesses_get_no_extra_tries, parallel_guesses_get_no_extra_tries);

/// Sessions end when idle or at their absolute lifetime; a password change
/// ends the others; an admin can end them all; pruning deletes the dead.
async fn sessions_end_and_are_pruned(store: Store) {
    let engine = with_user(store.clone()).await;
    let idle = engine.config.session_idle;
    let max = engine.config.session_max;
    let now = Utc::now();
    let (_, token) = engine.login("s@example.test", "right-password", "10.0.0.3", now).await.unwrap();
    // Activity keeps it alive past the idle timeout...
    let mut at = now;
    while at < now + idle * 2 {
        at += idle / 2;
        assert!(engine.session_user(&token, at).await.unwrap().is_some(), "active at {at}");
    }
    // ...idleness ends it.
    assert!(engine.session_user(&token, at + idle + Duration::seconds(1)).await.unwrap().is_none());
    // The absolute lifetime ends even an active session.
    let (_, busy) = engine.login("s@example.test", "right-password", "10.0.0.3", now).await.unwrap();
    let mut at = now;
    while at + idle / 2 < now + max {
        at += idle / 2;
        assert!(engine.session_user(&busy, at).await.unwrap().is_some());
    }
    assert!(engine.session_user(&busy, now + max + Duration::seconds(1)).await.unwrap().is_none());
    // A password change keeps this session and ends the others.
    let (_, token) = engine.login("s@example.test", "right-password", "10.0.0.4", now).await.unwrap();
    let (_, other) = engine.login("s@example.test", "right-password", "10.0.0.4", now).await.unwrap();
    assert!(engine.change_password(&uid("s"), "wrong", "new-password-1", &token, now).await.is_err());
    engine.change_password(&uid("s"), "right-password", "new-password-1", &token, now).await.unwrap();
    assert!(engine.session_user(&token, now).await.unwrap().is_some());
    assert!(engine.session_user(&other, now).await.unwrap().is_none());
    // An admin signs the user out everywhere.
    let (_, second) = engine.login("s@example.test", "new-password-1", "10.0.0.5", now).await.unwrap();
    assert_eq!(engine.sign_out_everywhere(&uid("s"), "user:admin", now).await.unwrap(), 2);
    assert!(engine.session_user(&token, now).await.unwrap().is_none());
    assert!(engine.session_user(&second, now).await.unwrap().is_none());
    assert!(matches!(engine.sign_out_everywhere(&uid("ghost"), "user:admin", now).await, Err(AppError::NotFound(_))));
    // Pruning: old attempts and ended sessions go; live ones stay.
    let (_, live) = engine.login("s@example.test", "new-password-1", "10.0.0.5", now).await.unwrap();
    let long_ago = now - idle - Duration::minutes(2);
    let (_, stale) = engine.login("s@example.test", "new-password-1", "10.0.0.5", long_ago).await.unwrap();
    assert!(engine.login("s@example.test", "wrong", "10.0.0.6", long_ago).await.is_err());
    let count = |sql: &'static str| {
        let store = store.clone();
        async move { crate::server::service::tests::scalar(&store, sql).await }
    };
    assert_eq!(count("SELECT CAST(COUNT(*) AS BIGINT) FROM sessions").await, 2);
    assert!(engine.session_user(&stale, now).await.unwrap().is_none(), "idle since long ago");
    engine.prune_stale(now + Duration::minutes(1)).await.unwrap();
    assert_eq!(count("SELECT CAST(COUNT(*) AS BIGINT) FROM sessions").await, 1, "only the live session is left");
    assert_eq!(count("SELECT CAST(COUNT(*) AS BIGINT) FROM login_throttle").await, 0, "stale throttle rows go");
    assert!(engine.session_user(&live, now + Duration::minutes(1)).await.unwrap().is_some());
    engine.prune_stale(now + Duration::days(30)).await.unwrap();
    assert_eq!(count("SELECT CAST(COUNT(*) AS BIGINT) FROM sessions").await, 0);
    assert_eq!(count("SELECT CAST(COUNT(*) AS BIGINT) FROM login_attempts").await, 0);
    assert_eq!(count("SELECT CAST(COUNT(*) AS BIGINT) FROM login_throttle").await, 0);
}
both_stores!(sessions_end_and_are_pruned, sessions_end_and_are_pruned);

/// Disabled accounts cannot sign in; their sessions and bound keys stop
/// working; roles change; the last administrator stays one.
async fn accounts_are_disabled_and_roles_change(store: Store) {
    use crate::domain::identity::Role;
    let engine = with_user(store.clone()).await;
    let now = Utc::now();
    let (_, token) = engine.login("s@example.test", "right-password", "10.0.0.1", now).await.unwrap();
    let (_, key) = engine
        .create_api_key(Some(&uid("s")), &[crate::domain::identity::Scope::Read], "k", "test", now)
        .await
        .unwrap();
    let key_hash = crate::server::auth::hash_token(&key);
    let mut conn = store.pool().acquire().await.unwrap();
    assert!(crate::server::store::keys::key_by_hash(&mut conn, &key_hash).await.unwrap().is_some());
    drop(conn);
    engine.set_account_disabled(&uid("s"), true, "user:root", now).await.unwrap();
    assert!(engine.session_user(&token, now).await.unwrap().is_none(), "sessions ended");
    assert!(matches!(
        engine.login("s@example.test", "right-password", "10.0.0.1", now).await,
        Err(AppError::Forbidden(_))
    ));
    // The wrong password still only says the credentials are wrong.
    assert!(matches!(engine.login("s@example.test", "nope", "10.0.0.1", now).await, Err(AppError::InvalidCredentials)));
    let mut conn = store.pool().acquire().await.unwrap();
    assert!(crate::server::store::keys::key_by_hash(&mut conn, &key_hash).await.unwrap().is_none(), "bound key stops");
    drop(conn);
    assert!(matches!(engine.set_account_disabled(&uid("s"), true, "user:root", now).await, Err(AppError::Conflict(_))));
    engine.set_account_disabled(&uid("s"), false, "user:root", now).await.unwrap();
    assert!(engine.login("s@example.test", "right-password", "10.0.0.1", now).await.is_ok());
    // Roles: s becomes the only admin, and then cannot be demoted or disabled.
    engine.set_user_role(&uid("s"), Role::Admin, "user:root", now).await.unwrap();
    assert!(matches!(engine.set_user_role(&uid("s"), Role::User, "user:root", now).await, Err(AppError::Conflict(_))));
    assert!(matches!(engine.set_account_disabled(&uid("s"), true, "user:root", now).await, Err(AppError::Conflict(_))));
    let audited = crate::server::service::tests::scalar(
        &store,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action IN ('user.disable', 'user.enable', 'user.role')",
    )
    .await;
    assert_eq!(audited, 3);
}
both_stores!(accounts_are_disabled_and_roles_change, accounts_are_disabled_and_roles_change);

/// The key's stored last use, in unix ms.
async fn key_last_used(store: &Store, secret: &str) -> Option<i64> {
    let mut conn = store.pool().acquire().await.unwrap();
    let k = crate::server::store::keys::key_by_hash(&mut conn, &crate::server::auth::hash_token(secret))
        .await
        .unwrap()
        .unwrap();
    k.last_used_at.map(|t| t.timestamp_millis())
}

/// Waits (up to 5 s) until the key's last use is `want` and no write of it
/// is pending.
async fn key_touch_settles(engine: &Engine, secret: &str, want: i64) {
    for _ in 0..200 {
        if key_last_used(&engine.store, secret).await == Some(want) && engine.key_touches.lock().unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the key's last use never became {want}");
}

/// A key's last use is written off the request path, once per key however
/// many requests see it stale at once, and again once it is a minute old
/// (the pending write is forgotten when it finishes).
async fn key_last_use_is_noted_once_and_again_later(store: Store) {
    let engine = with_user(store.clone()).await;
    let now = Utc::now();
    let (key, secret) = engine
        .create_api_key(Some(&uid("s")), &[crate::domain::identity::Scope::Read], "k", "test", now)
        .await
        .unwrap();
    assert_eq!(key_last_used(&store, &secret).await, None);
    let seen = futures::future::join_all((0..20).map(|_| engine.api_key_by_secret(&secret, now))).await;
    assert!(seen.iter().all(|k| k.as_ref().unwrap().as_ref().unwrap().id == key.id));
    assert!(engine.key_touches.lock().unwrap().len() <= 1);
    key_touch_settles(&engine, &secret, now.timestamp_millis()).await;
    // Within the minute nothing is written; after it, the new time is.
    engine.api_key_by_secret(&secret, now + Duration::seconds(30)).await.unwrap();
    assert!(engine.key_touches.lock().unwrap().is_empty());
    let later = now + Duration::minutes(2);
    engine.api_key_by_secret(&secret, later).await.unwrap();
    key_touch_settles(&engine, &secret, later.timestamp_millis()).await;
}
both_stores!(key_last_use_is_noted_once_and_again_later, key_last_use_is_noted_once_and_again_later);

/// Keys are answered from the process's copy: a revocation on this process
/// counts at once, one made elsewhere (raw SQL standing for another node)
/// once the copy ages out.
async fn revoked_keys_stop_working(store: Store) {
    let engine = with_user(store.clone()).await;
    let now = Utc::now();
    let scopes = [crate::domain::identity::Scope::Read];
    let (key, secret) = engine.create_api_key(Some(&uid("s")), &scopes, "k", "test", now).await.unwrap();
    assert!(engine.api_key_by_secret(&secret, now).await.unwrap().is_some());
    engine.revoke_api_key(&key.id, "admin", now).await.unwrap();
    assert!(engine.api_key_by_secret(&secret, now).await.unwrap().is_none(), "revoked here: refused at once");

    let (key, secret) = engine.create_api_key(Some(&uid("s")), &scopes, "k2", "test", now).await.unwrap();
    assert!(engine.api_key_by_secret(&secret, now).await.unwrap().is_some());
    sqlx::query(&format!("UPDATE api_keys SET revoked_at = {} WHERE id = '{}'", now.timestamp_millis(), key.id))
        .execute(store.pool())
        .await
        .unwrap();
    tokio::time::sleep(store.view().ttl()).await;
    assert!(
        engine.api_key_by_secret(&secret, now).await.unwrap().is_none(),
        "revoked elsewhere: refused within the ttl"
    );
}
both_stores!(revoked_keys_stop_working, revoked_keys_stop_working);
