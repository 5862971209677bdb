//! CSV downloads of billing history and renewal history (family B: money as
//! exact decimal strings).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::server::error::AppResult;
use crate::server::identity::Principal;
use crate::server::state::AppState;

/// One CSV field, quoted when it must be. A cell that a spreadsheet would
/// run as a formula (it begins with `=`, `+`, `-`, `@`, a tab or a CR) gets a
/// leading `'`, so a plan name such as `=HYPERLINK(..)` stays text.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

fn csv(name: &str, header_row: &[&str], rows: Vec<Vec<String>>) -> Response {
    let mut out = header_row.join(",");
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&r.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        out,
    )
        .into_response()
}

pub async fn billing_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Response> {
    principal.require_read(&user_id)?;
    let bills = state.engine.billing_history(&user_id, Utc::now()).await?;
    let rows = bills
        .iter()
        .map(|b| {
            vec![
                b.billing_period.clone(),
                b.period_start.to_rfc3339(),
                b.period_end.to_rfc3339(),
                b.plan_name.clone(),
                b.plan_fee.usd_string(),
                b.usage_cost.usd_string(),
                b.total.usd_string(),
                b.status.clone(),
            ]
        })
        .collect();
    let h = [
        "billing_period",
        "period_start",
        "period_end",
        "plan",
        "plan_fee_usd",
        "usage_cost_usd",
        "total_usd",
        "status",
    ];
    Ok(csv(&format!("billing-history-{user_id}.csv"), &h, rows))
}

pub async fn renewal_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Response> {
    principal.require_read(&user_id)?;
    let (renewals, _) = state.engine.renewals(&user_id, 1000, 0, false).await?;
    let rows = renewals
        .iter()
        .map(|r| {
            vec![
                r.created_at.to_rfc3339(),
                r.renewal_type.clone(),
                r.plan_name.clone(),
                r.previous_plan_name.clone().unwrap_or_default(),
                r.billing_cycle.clone(),
                r.new_period_start.to_rfc3339(),
                r.new_period_end.to_rfc3339(),
                r.payment_amount.usd_string(),
                r.payment_status.clone(),
            ]
        })
        .collect();
    let h = [
        "created_at",
        "renewal_type",
        "plan",
        "previous_plan",
        "billing_cycle",
        "new_period_start",
        "new_period_end",
        "payment_amount_usd",
        "payment_status",
    ];
    Ok(csv(&format!("renewal-history-{user_id}.csv"), &h, rows))
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_when_needed() {
        assert_eq!(field("Pro"), "Pro");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn formulas_are_neutralised_and_quoting_kept() {
        let cases = [
            ("Pro", "Pro"),
            ("=HYPERLINK(\"http://evil\")", "\"'=HYPERLINK(\"\"http://evil\"\")\""),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("a,b", "\"a,b\""),
            ("29.000000000", "29.000000000"),
        ];
        for (raw, want) in cases {
            assert_eq!(field(raw), want, "{raw:?}");
        }
    }
}
