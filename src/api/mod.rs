//! Server functions and the DTOs they share with the browser, one file per
//! area. Each server function is thin: take the state from context, check
//! the caller, call a service, map the result to a DTO.

pub mod admin;
pub mod billing;
pub mod dashboard;
pub mod insights;
pub mod performance;
pub mod session;
pub mod wallet;
pub mod webhooks;
