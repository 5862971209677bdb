//! Pure billing logic: money, pricing, periods, limits, alerts, projections
//! and event validation.
//!
//! No I/O lives here: no leptos, sqlx, axum or tokio, and no clock (callers
//! pass `now`). It compiles for the browser too, so the UI formats money with
//! the same code the engine uses. Most unit and property tests live here.

pub mod alerts;
pub mod event;
pub mod focus;
pub mod identity;
pub mod insights;
pub mod latency;
pub mod limits;
pub mod links;
pub mod litellm;
pub mod money;
pub mod period;
pub mod plan;
pub mod pricing;
pub mod projection;
pub mod provider;
pub mod provider_usage;
pub mod response_times;
pub mod subscription;
pub mod tags;
pub mod usage_log;
pub mod wallet;
pub mod webhooks;
