//! Tally: self-hosted usage-based billing and AI-API cost dashboard.
//!
//! One crate, two builds: `ssr` (the server binary, see `main.rs`) and
//! `hydrate` (the browser bundle). `domain` is pure and shared by both;
//! `server` exists only in the `ssr` build; `api` holds the server functions
//! and the DTOs both sides share; `ui` is the Leptos app.

// Without `--cfg erase_components` (the release build) a view's type nests
// as deep as its markup; the import report's passes the default 128.
#![recursion_limit = "256"]

pub mod api;
pub mod domain;
#[cfg(test)]
mod layout_tests;
#[cfg(feature = "ssr")]
pub mod server;
pub mod ui;

/// Browser entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(ui::App);
}
