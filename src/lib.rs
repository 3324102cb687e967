//! Latchkey: a self-hosted, multi-tenant authentication server — one binary, one SQLite
//! file, one TOML config.
#![forbid(unsafe_code)]
// Handlers return `Result<Response, ApiError>`; both sides are large and errors are the rare,
// cold path, so boxing them buys nothing measurable.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod app;
pub mod change;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod cursor;
pub mod db;
pub mod error;
pub mod events;
pub mod flows;
pub mod http;
pub mod ids;
pub mod keys;
pub mod log;
pub mod maintenance;
pub mod metrics;
pub mod oauth;
pub mod org_keys;
pub mod outbox;
pub mod password;
pub mod ratelimit;
pub mod role;
pub mod session;
pub mod state;
pub mod status;
pub mod tokens;
pub mod totp;
pub mod ui;
pub mod validate;
pub mod workos;
