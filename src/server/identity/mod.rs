//! Who is calling, for every door: the principal of a request (a session
//! cookie or an API key, resolved through the services), the session
//! cookie, and the cross-site check. REST handlers, server functions and
//! the policy layer all take identity from here; no door takes it from
//! another door.

pub mod cookies;
pub mod principal;

pub use principal::Principal;
