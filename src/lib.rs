//! Latchkey: a self-hosted, multi-tenant authentication server.
#![forbid(unsafe_code)]

pub mod clock;
pub mod crypto;
