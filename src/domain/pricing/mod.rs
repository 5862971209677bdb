//! Pricing an event from the catalog.
//!
//! The catalog holds price *versions*: a provider + model with prices that
//! apply from `effective_from` until the next version of the same pair. The
//! model `*` is a provider-wide price used when the event names no model or a
//! model without its own price (search, scrape and image providers price per
//! unit regardless of model). An LLM model with neither is *unpriced*: the
//! event is recorded, flagged, and an admin alert raised, never $0 silently.

mod catalog;
mod cost;
pub mod json;
mod quantities;
mod rates;
#[cfg(test)]
mod tests;

pub use catalog::*;
pub use cost::*;
pub use quantities::*;
pub use rates::*;
