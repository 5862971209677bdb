//! The admin API, one journey.

use super::*;

/// The admin API: everything the admin UI does, scriptable and audited.
async fn admin_api_journey(store: Store) {
    let api = setup(store, Limits::new()).await;
    let admin = api.key(None, &["admin"]).await;
    let reader = api.key(None, &["read"]).await;
    let a = Some(admin.as_str());
    assert_error(&api.get("/api/admin/plans", Some(&reader)).await, StatusCode::FORBIDDEN, "forbidden");
    assert_error(&api.get("/api/admin/plans", None).await, StatusCode::UNAUTHORIZED, "unauthorized");

    // Validation errors come back per field.
    let bad = api.post("/api/admin/plans", a, json!({"name": "", "tier": "gold", "price_monthly": "-1", "price_yearly": "x", "limits": {"gemini_calls": "lots", "bogus_key": 1}})).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    for f in ["name", "tier", "price_monthly", "price_yearly", "limits.gemini_calls", "limits.bogus_key"] {
        assert!(bad.body["fields"][f].is_string(), "{f}: {}", bad.body);
    }
    let plan = api
        .post("/api/admin/plans", a, json!({"name": "Team", "tier": "enterprise", "price_monthly": "49.50", "price_yearly": "495", "description": "For teams", "features": ["Shared limits"], "limits": {"gemini_calls": 800, "monthly_cost": "60", "openai_calls": null}}))
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    let p = &plan.body["data"];
    assert_eq!(
        (
            p["price_monthly"].clone(),
            p["limits"]["gemini_calls"].clone(),
            p["limits"]["monthly_cost"].clone(),
            p["limits"]["openai_calls"].clone()
        ),
        (json!("49.500000000"), json!(800), json!("60.000000000"), Value::Null)
    );
    let id = p["id"].as_i64().unwrap();
    assert_error(
        &api.post(
            "/api/admin/plans",
            a,
            json!({"name": "Team", "tier": "pro", "price_monthly": "1", "price_yearly": "1"}),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    // Family A sees it at once (the catalog cache follows the revision).
    let fa = api.get("/api/subscription/plans", None).await;
    assert!(
        fa.body["data"]["plans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "Team" && x["price_monthly"] == json!(49.5))
    );

    // Assign it, then archive it: the subscriber keeps it, new ones cannot join.
    let assign = api
        .call(
            "PUT",
            "/api/admin/users/alice/subscription",
            a,
            Some(json!({"plan_id": id, "billing_cycle": "yearly"}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(assign.status, StatusCode::OK, "{}", assign.body);
    // A higher tier: the plan applies now; the yearly cycle waits for the
    // current cycle's end.
    assert_eq!(assign.body["data"]["change"], json!("upgraded"), "{}", assign.body);
    assert_eq!(assign.body["data"]["scheduled"]["billing_cycle"], json!("yearly"), "{}", assign.body);
    let archived = api
        .call("PUT", &format!("/api/admin/plans/{id}"), a, Some(json!({"archived": true}).to_string().into_bytes()))
        .await;
    assert_eq!(archived.body["data"]["archived"], json!(true), "{}", archived.body);
    assert_eq!(archived.body["data"]["name"], json!("Team"), "a partial PUT keeps the other fields");
    let sub = api.get("/api/subscription/user/alice/subscription", a).await;
    assert_eq!(
        (
            sub.body["data"]["plan"].clone(),
            sub.body["data"]["billing_cycle"].clone(),
            sub.body["data"]["price"].clone()
        ),
        (json!("Team"), json!("monthly"), json!(49.5))
    );
    let bob = api
        .call(
            "PUT",
            "/api/admin/users/bob/subscription",
            a,
            Some(json!({"plan_id": id, "billing_cycle": "monthly"}).to_string().into_bytes()),
        )
        .await;
    assert_error(&bob, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(
        !api.get("/api/subscription/plans", None).await.body["data"]["plans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "Team")
    );

    // Prices: a new version from an instant; the history stays.
    let v1 = api.post("/api/admin/pricing", a, json!({"provider": "openai", "model": "o9", "input_per_million": "5", "output_per_million": "20", "effective_from": "2026-01-01T00:00:00Z"})).await;
    assert_eq!(v1.status, StatusCode::OK, "{}", v1.body);
    let dup = api.post("/api/admin/pricing", a, json!({"provider": "openai", "model": "o9", "input_per_million": "6", "effective_from": "2026-01-01T00:00:00Z"})).await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    let bad_price = api
        .post("/api/admin/pricing", a, json!({"provider": "openai", "model": "o9", "input_per_million": "-5"}))
        .await;
    assert_error(&bad_price, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(bad_price.body["fields"]["input_per_million"].is_string());
    let v2 = api
        .post(
            "/api/admin/pricing",
            a,
            json!({"provider": "openai", "model": "o9", "input_per_million": "4", "output_per_million": "16"}),
        )
        .await;
    assert_eq!(v2.status, StatusCode::OK);
    let all = api.get("/api/admin/pricing", a).await;
    assert_eq!(all.body["data"]["pricing"].as_array().unwrap().iter().filter(|x| x["model"] == "o9").count(), 2);

    // Users.
    let u = api.post("/api/admin/users", a, json!({"id": "carol-42", "email": "carol@example.test", "name": "Carol", "role": "user", "password": "long-enough-pw"})).await;
    assert_eq!((u.status, u.body["data"]["user_id"].clone()), (StatusCode::OK, json!("carol-42")), "{}", u.body);
    assert_error(
        &api.post("/api/admin/users", a, json!({"email": "carol@example.test"})).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &api.post("/api/admin/users", a, json!({"email": "x@example.test", "password": "short"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );
    let listed = api.get("/api/admin/users?search=carol", a).await;
    assert_eq!(listed.body["data"]["total"], json!(1));
    assert_eq!(api.get("/api/admin/users/carol-42", a).await.body["data"]["email"], json!("carol@example.test"));

    // Keys: the secret once, then revoked and dead.
    let k = api.post("/api/admin/api-keys", a, json!({"user_id": "carol-42", "scopes": ["read"]})).await;
    let secret = k.body["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(api.get("/api/subscription/usage/carol-42", Some(&secret)).await.status, StatusCode::OK);
    assert!(
        api.get("/api/admin/api-keys", a).await.body["data"]["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x.get("key").is_none()),
        "secrets are never listed"
    );
    let kid = k.body["data"]["id"].as_str().unwrap();
    assert_eq!(api.call("DELETE", &format!("/api/admin/api-keys/{kid}"), a, None).await.status, StatusCode::OK);
    assert_error(
        &api.get("/api/subscription/usage/carol-42", Some(&secret)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &api.post("/api/admin/api-keys", a, json!({"scopes": ["superuser"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );

    // The audit log saw every change, with before and after.
    let log = api.get("/api/admin/audit-log?limit=100", a).await;
    let actions: Vec<String> = log.body["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "plan.create",
        "plan.update",
        "subscription.change",
        "price.create",
        "user.create",
        "api_key.create",
        "api_key.revoke",
    ] {
        assert!(actions.iter().any(|x| x == want), "{want} in {actions:?}");
    }
    let update = log.body["data"]["entries"].as_array().unwrap().iter().find(|e| e["action"] == "plan.update").unwrap();
    assert_eq!(
        (update["before"]["archived"].clone(), update["after"]["archived"].clone()),
        (json!(false), json!(true))
    );
    let filtered = api.get("/api/admin/audit-log?entity_type=price", a).await;
    assert!(filtered.body["data"]["entries"].as_array().unwrap().iter().all(|e| e["entity_type"] == "price"));
}
both_stores!(admin_api_journey, admin_api_journey);
