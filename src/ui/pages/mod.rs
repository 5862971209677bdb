//! One module per route.

pub mod account;
pub mod admin;
pub mod billing;
pub mod dashboard;
pub mod insights;
pub mod login;
pub mod not_found;
pub mod performance;
pub mod wallet;
