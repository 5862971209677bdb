//! Who may call what: every route against every kind of caller.

use super::*;

// ----- authorization matrix -----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anon,
    UserA,
    UserB,
    Admin,
    Ingest,
    Read,
}

const WHO: [Who; 6] = [Who::Anon, Who::UserA, Who::UserB, Who::Admin, Who::Ingest, Who::Read];

struct Caller {
    cookie: Option<String>,
    bearer: Option<String>,
}

impl Api {
    async fn as_caller(&self, c: &Caller, method: &str, path: &str, body: Option<(&str, String)>) -> Reply {
        let mut req = Request::builder().method(method).uri(path).header(header::HOST, "tally.test");
        if let Some((ct, _)) = &body {
            req = req.header(header::CONTENT_TYPE, *ct);
        }
        if let Some(cookie) = &c.cookie {
            req = req
                .header(header::COOKIE, format!("tally_session={cookie}"))
                .header(header::ORIGIN, "https://tally.test");
        }
        if let Some(k) = &c.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let body = body.map(|(_, b)| Body::from(b)).unwrap_or_default();
        let resp = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
        Reply { status, headers, body }
    }
}

fn sfn_url<T: leptos::server_fn::ServerFn>() -> String {
    T::url().to_string()
}

/// Every route and server function × every kind of caller → the expected
/// status; and no answer to one user ever carries the other's identity.
async fn authorization_matrix(store: Store) {
    use crate::api::{admin as a, billing as b, dashboard as d, insights as i, session as s};
    use crate::domain::identity::Role;
    use crate::server::service::admin::UserForm;

    let api = setup(store.clone(), Limits::new().with("tavily_calls", 10)).await;
    let now = Utc::now();
    for (id, role) in [("user-alpha", Role::User), ("user-bravo", Role::User), ("boss", Role::Admin)] {
        let form = UserForm {
            id: Some(id.into()),
            email: format!("{id}@example.test"),
            name: id.into(),
            role,
            password: Some(format!("{id}-password")),
            timezone: None,
        };
        api.engine.admin_create_user(form, "test", now).await.unwrap();
    }
    let session = |id: &str| {
        let engine = api.engine.clone();
        let id = id.to_string();
        async move {
            engine.login(&format!("{id}@example.test"), &format!("{id}-password"), "test", Utc::now()).await.unwrap().1
        }
    };
    let ingest = api.key(None, &["ingest"]).await;
    let read = api.key(None, &["read"]).await;
    let callers = [
        (Who::Anon, Caller { cookie: None, bearer: None }),
        (Who::UserA, Caller { cookie: Some(session("user-alpha").await), bearer: None }),
        (Who::UserB, Caller { cookie: Some(session("user-bravo").await), bearer: None }),
        (Who::Admin, Caller { cookie: Some(session("boss").await), bearer: None }),
        (Who::Ingest, Caller { cookie: None, bearer: Some(ingest) }),
        (Who::Read, Caller { cookie: None, bearer: Some(read) }),
    ];
    // An alert of user A's, for mark-read.
    let events: Vec<Value> =
        (0..9).map(|i| json!({"id": format!("m{i}"), "user_id": "user-alpha", "provider": "tavily"})).collect();
    let k = api.key(None, &["ingest"]).await;
    assert_eq!(api.post("/api/usage/events", Some(&k), json!({"events": events})).await.status, StatusCode::OK);
    let alert_id = api.engine.alerts(&uid("user-alpha"), false).await.unwrap().0[0].id;

    use StatusCode as S;
    const OK: S = S::OK;
    const UN: S = S::UNAUTHORIZED;
    const NO: S = S::FORBIDDEN;
    let json_ct = "application/json";
    let form_ct = "application/x-www-form-urlencoded";
    // (method, path, body, expected for [Anon, UserA, UserB, Admin, Ingest, Read])
    let own_read = [UN, OK, NO, OK, NO, OK];
    let admin_only = [UN, NO, NO, OK, NO, NO];
    let public = [OK; 6];
    let signed_in_any = [UN, OK, OK, OK, OK, OK];
    type Row = (&'static str, String, Option<(&'static str, String)>, [S; 6]);
    let mut rows: Vec<Row> = vec![
        ("GET", "/api/subscription/plans".into(), None, public),
        ("GET", "/api/subscription/pricing".into(), None, public),
        ("GET", "/api/subscription/usage/user-alpha".into(), None, own_read),
        ("GET", "/api/subscription/usage/user-alpha/trends".into(), None, own_read),
        ("GET", "/api/subscription/dashboard/user-alpha".into(), None, own_read),
        ("GET", "/api/subscription/alerts/user-alpha".into(), None, own_read),
        ("GET", "/api/subscription/user/user-alpha/subscription".into(), None, own_read),
        ("GET", "/api/subscription/renewal-history/user-alpha".into(), None, own_read),
        ("GET", "/api/subscription/usage-logs".into(), None, [UN, OK, OK, OK, NO, NO]),
        // Marking read is a write: a read key may not.
        ("POST", format!("/api/subscription/alerts/{alert_id}/mark-read"), None, [UN, OK, NO, OK, NO, NO]),
        (
            "POST",
            "/api/subscription/preflight-check".into(),
            Some((
                json_ct,
                json!({"user_id": "user-alpha", "operations": [{"provider": "tavily", "operation_type": "search"}]})
                    .to_string(),
            )),
            [UN, OK, NO, OK, OK, OK],
        ),
        (
            "POST",
            "/api/usage/events".into(),
            Some((
                json_ct,
                json!({"events": [{"id": "mx", "user_id": "user-alpha", "provider": "tavily"}]}).to_string(),
            )),
            [UN, NO, NO, NO, OK, NO],
        ),
        // The health indicator every user's dashboard shows (family A).
        ("GET", "/api/content-planning/monitoring/health".into(), None, signed_in_any),
        ("GET", "/api/content-planning/monitoring/api-stats".into(), None, admin_only),
        ("GET", "/api/content-planning/monitoring/lightweight-stats".into(), None, signed_in_any),
        ("GET", "/api/content-planning/monitoring/cache-stats".into(), None, admin_only),
        ("GET", "/api/admin/plans".into(), None, admin_only),
        ("GET", "/api/admin/plans/1".into(), None, admin_only),
        ("GET", "/api/admin/pricing".into(), None, admin_only),
        ("GET", "/api/admin/users".into(), None, admin_only),
        ("GET", "/api/admin/users/user-alpha".into(), None, admin_only),
        // An id no user can have: refused to whoever may not read any user,
        // and to whoever may, a 404 like any unknown user.
        ("GET", "/api/admin/users/no%20such%20id".into(), None, [UN, NO, NO, S::NOT_FOUND, NO, NO]),
        ("GET", "/api/subscription/usage/no%20such%20id".into(), None, [UN, NO, NO, S::NOT_FOUND, NO, S::NOT_FOUND]),
        ("GET", "/api/wallet/no%20such%20id".into(), None, [UN, NO, NO, S::NOT_FOUND, NO, S::NOT_FOUND]),
        ("GET", "/api/admin/api-keys".into(), None, admin_only),
        ("GET", "/api/admin/audit-log".into(), None, admin_only),
        (
            "POST",
            "/api/admin/pricing".into(),
            Some((json_ct, json!({"provider": "tavily", "model": "*", "per_search": "0.001"}).to_string())),
            admin_only,
        ),
        // Server functions (form-encoded, as the browser posts them).
        ("POST", sfn_url::<s::CurrentUser>(), Some((form_ct, String::new())), public),
        ("POST", sfn_url::<d::GetDashboard>(), Some((form_ct, "user=user-alpha&months=6".into())), own_read),
        (
            "POST",
            sfn_url::<d::MarkAllAlertsRead>(),
            Some((form_ct, "user=user-alpha".into())),
            [UN, OK, NO, OK, NO, NO],
        ),
        ("POST", sfn_url::<d::MarkAlertRead>(), Some((form_ct, format!("id={alert_id}"))), [UN, OK, NO, OK, NO, NO]),
        ("POST", sfn_url::<b::UsageLogPage>(), Some((form_ct, "user=user-alpha".into())), [UN, OK, NO, OK, NO, OK]),
        ("POST", sfn_url::<b::BillingHistory>(), Some((form_ct, "user=user-alpha".into())), [UN, OK, NO, OK, NO, OK]),
        ("POST", sfn_url::<b::PlanChoice>(), Some((form_ct, String::new())), [UN, OK, OK, OK, NO, NO]),
        (
            "POST",
            sfn_url::<b::ChangeMyPlan>(),
            Some((form_ct, "plan_id=1&billing_cycle=yearly".into())),
            [UN, OK, OK, OK, NO, NO],
        ),
        ("GET", "/api/usage/user-alpha/logs.csv".into(), None, own_read),
        ("GET", "/api/billing/user-alpha/history.csv".into(), None, own_read),
        ("GET", "/api/billing/user-alpha/renewals.csv".into(), None, own_read),
        ("GET", "/api/usage/user-alpha/breakdown?by=tag:project".into(), None, own_read),
        ("GET", "/api/insights/user-alpha".into(), None, own_read),
        ("GET", "/api/wallet/user-alpha".into(), None, own_read),
        ("GET", "/api/usage/user-alpha/performance".into(), None, own_read),
        ("GET", "/api/wallet/user-alpha/ledger".into(), None, own_read),
        (
            "POST",
            "/api/admin/users/user-alpha/wallet/grants".into(),
            Some((json_ct, json!({"amount": "1", "kind": "paid", "idempotency_key": "authz"}).to_string())),
            admin_only,
        ),
        (
            "POST",
            "/api/admin/users/user-alpha/wallet/refunds".into(),
            Some((json_ct, json!({"event_id": "none", "reason": "authz"}).to_string())),
            [UN, NO, NO, S::NOT_FOUND, NO, NO],
        ),
        ("GET", "/api/admin/profitability".into(), None, admin_only),
        ("GET", "/api/admin/profitability.csv".into(), None, admin_only),
        ("POST", sfn_url::<i::GetBreakdown>(), Some((form_ct, "user=user-alpha&by=model".into())), own_read),
        ("POST", sfn_url::<i::GetAdvice>(), Some((form_ct, "user=user-alpha".into())), own_read),
        ("POST", sfn_url::<i::GetProfitability>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::AdminPlans>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::AdminPricing>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::AdminUsers>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::AdminAlerts>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::AuditEntries>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::ApiKeys>(), Some((form_ct, String::new())), admin_only),
        (
            "POST",
            sfn_url::<a::AssignPlan>(),
            Some((form_ct, "user_id=user-bravo&plan_id=1&billing_cycle=monthly".into())),
            admin_only,
        ),
        (
            "POST",
            sfn_url::<a::RevokeApiKey>(),
            Some((form_ct, "id=no-such-key".into())),
            [UN, NO, NO, S::NOT_FOUND, NO, NO],
        ),
        (
            "POST",
            sfn_url::<a::CreateApiKey>(),
            Some((form_ct, "key[user_id]=&key[name]=x&key[scope_read]=on".into())),
            admin_only,
        ),
        (
            "POST",
            sfn_url::<a::SavePlan>(),
            Some((form_ct, "plan[name]=Matrix&plan[tier]=basic&plan[price_monthly]=1&plan[price_yearly]=10".into())),
            admin_only,
        ),
        (
            "POST",
            sfn_url::<s::ChangePassword>(),
            Some((form_ct, "current_password=wrong-one&new_password=another-one".into())),
            [UN, OK, OK, OK, NO, NO],
        ),
    ];
    rows.push((
        "POST",
        sfn_url::<a::AddPrice>(),
        Some((form_ct, "price[provider]=tavily&price[model]=*&price[per_search]=0.002".into())),
        admin_only,
    ));
    let mut failures = Vec::new();
    for (method, path, body, expected) in &rows {
        for (i, (who, caller)) in callers.iter().enumerate() {
            assert_eq!(*who, WHO[i]);
            let r = api.as_caller(caller, method, path, body.clone()).await;
            if r.status != expected[i] {
                failures.push(format!("{method} {path} as {who:?}: {} (want {}) {}", r.status, expected[i], r.body));
            }
            let text = r.body.to_string();
            let foreign = match who {
                Who::UserA => Some("user-bravo"),
                Who::UserB => Some("user-alpha"),
                _ => None,
            };
            if let Some(f) = foreign
                && text.contains(f)
            {
                failures.push(format!("{method} {path} as {who:?} leaked {f}: {text}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    // A cookie-authenticated change from another origin is refused (CSRF).
    let mut req = Request::builder().method("POST").uri(sfn_url::<a::AdminPlans>()).header(header::HOST, "tally.test");
    req = req
        .header(header::COOKIE, format!("tally_session={}", callers[3].1.cookie.clone().unwrap()))
        .header(header::ORIGIN, "https://evil.test");
    let resp = api.router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}
both_stores!(authorization_matrix, authorization_matrix);
