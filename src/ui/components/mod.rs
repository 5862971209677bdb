//! Reusable pieces. `charts` builds charming options as plain data (pure,
//! unit-tested) and draws them in the browser only.

pub mod charts;
pub mod layout;
