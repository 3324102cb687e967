//! `AppState`: everything a handler needs, no globals. Built by `app::App::build`; a low
//! module that names no handler, so handlers and the pipeline both depend on it and not on
//! each other.

use crate::clock::SharedClock;
use crate::config::{Config, Secret};
use crate::db::Db;
use crate::keys::KeyStore;
use crate::log::Logger;
use crate::password::Hasher;
use std::sync::atomic::AtomicBool;

pub struct AppState {
    pub config: Config,
    pub db: Db,
    pub clock: SharedClock,
    pub keys: KeyStore,
    pub hasher: Hasher,
    pub limiter: crate::ratelimit::Limiter,
    pub metrics: crate::metrics::Metrics,
    /// API-key uses not yet written to `api_keys.last_used_at`.
    pub key_usage: crate::org_keys::KeyUsage,
    pub log: Logger,
    /// The deployment secret (config, environment, or generated for the dev default).
    pub(crate) secret: Secret,
    /// HMAC key for opaque pagination cursors.
    pub cursor_key: [u8; 32],
    /// Seals queued emails (see `outbox::at_rest`).
    pub mail_key: crate::outbox::MailKey,
    /// The hosted pages' templates and texts.
    pub ui: crate::ui::templates::Ui,
    /// The one-time token of the first-run setup page on a configured deployment with no org
    /// yet (printed to the log on start); None on the development default or once set up.
    pub setup_token: std::sync::Mutex<Option<String>>,
    /// The maintenance thread's stop signal, liveness and last sweep (`maintenance.rs`).
    pub maintenance: crate::maintenance::Maintenance,
    pub stopping: AtomicBool,
    /// The outbox signal: `notify()` after committing a transaction that queued a webhook or
    /// an email. Handlers need not: `AppState::change` does it after any change that queued
    /// (see `change.rs`). Also the worker's liveness, for `/readyz`.
    pub outbox: crate::outbox::Notifier,
    /// Refresh-token rotations of concurrent requests, committed together (`db/batch.rs`).
    pub rotations: crate::db::batch::GroupCommit<
        crate::db::sessions::RotateJob,
        crate::db::sessions::Rotation,
    >,
    /// Refreshes of `POST /auth/refresh`, read and rotated on the write connection, committed
    /// together (`session::RefreshJob`).
    pub refreshes:
        crate::db::batch::GroupCommit<crate::session::RefreshJob, crate::session::RefreshAnswer>,
}

impl AppState {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn secret(&self) -> &str {
        self.secret.expose()
    }

    /// Access-token lifetime plus a margin: how long a retired key stays published.
    pub fn key_publish_ms(&self) -> i64 {
        self.config.tokens.access_ttl.as_millis() as i64 + 5 * 60 * 1000
    }
}
