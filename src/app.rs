//! The application: `AppState` (everything a handler needs, no globals), building it from a
//! validated config, the request pipeline (request id → route → envelope → headers → one log
//! line), and the running server with its background threads.

use crate::api;
use crate::clock::SharedClock;
use crate::config::{Config, ConfigSource, Secret};
use crate::crypto;
use crate::db::{self, Db, meta};
use crate::error::ApiError;
use crate::http::respond::{self, error_response, set_header};
use crate::http::server::{self, ServerHandle, ServerOptions};
use crate::keys::{KeyError, KeyStore};
use crate::log::Logger;
use crate::password::Hasher;
pub use crate::state::AppState;
use rouille::{Request, Response};
use serde_json::json;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

#[derive(Debug)]
pub enum StartError {
    Db(db::Error),
    Keys(KeyError),
    Io(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Db(e) => write!(f, "{e}"),
            StartError::Keys(e) => write!(f, "{e}"),
            StartError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<db::Error> for StartError {
    fn from(e: db::Error) -> Self {
        StartError::Db(e)
    }
}

impl From<KeyError> for StartError {
    fn from(e: KeyError) -> Self {
        StartError::Keys(e)
    }
}

/// Opens the database and brings it to this binary's schema (snapshot first).
pub fn open_db(config: &Config, now: i64) -> Result<(Db, Option<PathBuf>), StartError> {
    let db = Db::open(&config.database.path, config.database.busy_timeout)?;
    let snapshot = db.migrate(now)?;
    Ok((db, snapshot))
}

/// The deployment secret: from the config, else (embedded default only) generated once and
/// kept in the database.
pub fn resolve_secret(config: &Config, db: &Db) -> Result<Secret, StartError> {
    if let Some(s) = &config.security.secret_key {
        return Ok(s.clone());
    }
    let generated = crypto::random_hex(32);
    let stored = db.write(|tx| meta::get_or_insert(tx, "dev_secret_key", &generated))?;
    Ok(Secret::new(stored))
}

pub struct App {
    pub state: Arc<AppState>,
}

impl App {
    /// Opens and migrates the database, resolves the secret and loads (or creates) the
    /// signing keys. Nothing listens yet.
    pub fn build(config: Config, clock: SharedClock) -> Result<App, StartError> {
        let log = Logger::new(config.log.format, config.log.level, clock.clone());
        if config.is_dev_default() {
            log.warn(
                "no config file given: running on the embedded development default (not for production)",
                &[("database", json!(config.database.path.display().to_string()))],
            );
        }
        let now = clock.now_ms();
        let (db, snapshot) = open_db(&config, now)?;
        if let Some(snap) = snapshot {
            log.info(
                "database migrated; snapshot written",
                &[("snapshot", json!(snap.display().to_string()))],
            );
        }
        let secret = resolve_secret(&config, &db)?;
        let publish_ms = config.tokens.access_ttl.as_millis() as i64 + 5 * 60 * 1000;
        let keys = KeyStore::open(
            &db,
            secret.expose(),
            config.tokens.algorithm,
            now,
            publish_ms,
        )?;
        let hasher = Hasher::new(
            config.argon2.clone(),
            config.security.max_concurrent_hashes,
            config.security.hash_queue,
        );
        let cursor_key = crypto::derive_key(secret.expose(), "cursor");
        let mail_key = crate::outbox::MailKey::derive(secret.expose());
        let resealed = crate::outbox::seal_plain_emails(&db, &mail_key)?;
        if resealed > 0 {
            log.info(
                "plain-text emails of an older version sealed or redacted",
                &[("rows", json!(resealed))],
            );
        }
        if config.is_dev_default() && config.workos.enabled {
            let (client_id, key) = crate::workos::dev_client(&db, now)?;
            log.warn(
                "WorkOS-compatible API on (development default): point the WorkOS SDK here",
                &[
                    ("WORKOS_BASE_URL", json!(config.server.public_url)),
                    ("WORKOS_CLIENT_ID", json!(client_id)),
                    ("WORKOS_API_KEY", json!(key)),
                ],
            );
        }
        let ui = crate::ui::templates::Ui::load(config.ui.templates_dir.as_deref())
            .map_err(StartError::Io)?;
        let no_org = db
            .read(|c| crate::db::orgs::list(c, None, 1))
            .map(|l| l.is_empty())
            .unwrap_or(false);
        let setup_token = (no_org && matches!(config.source, ConfigSource::File(_))).then(|| {
            let t = crypto::random_token(24);
            log.warn(
                "no organization yet: open /setup and use this one-time setup token",
                &[("setup_token", json!(t))],
            );
            t
        });
        Ok(App {
            state: Arc::new(AppState {
                config,
                db,
                clock,
                keys,
                hasher,
                limiter: crate::ratelimit::Limiter::new(),
                metrics: crate::metrics::Metrics::new(),
                key_usage: crate::org_keys::KeyUsage::new(now),
                log,
                secret,
                cursor_key,
                mail_key,
                ui,
                setup_token: std::sync::Mutex::new(setup_token),
                maintenance: crate::maintenance::Maintenance::new(),
                stopping: AtomicBool::new(false),
                outbox: crate::outbox::Notifier::new(),
                rotations: crate::db::batch::GroupCommit::new(crate::db::sessions::rotate, 64),
                refreshes: crate::db::batch::GroupCommit::new(crate::session::run_refresh_job, 64),
            }),
        })
    }

    /// Binds `server.bind` and serves.
    pub fn serve(self) -> Result<Running, StartError> {
        let bind = &self.state.config.server.bind;
        let listener = listen(bind, 1024)
            .map_err(|e| StartError::Io(format!("cannot listen on {bind}: {e}")))?;
        self.serve_on(listener)
    }

    /// Serves on an already-bound listener (tests bind 127.0.0.1:0).
    pub fn serve_on(self, listener: TcpListener) -> Result<Running, StartError> {
        let state = self.state;
        let s = &state.config.server;
        let opts = ServerOptions {
            threads: s.threads,
            max_connections: s.max_connections,
            idle_timeout: s.idle_timeout,
            read_timeout: s.read_timeout,
            max_header_bytes: s.max_header_bytes,
            max_headers: s.max_headers,
            max_body_bytes: s.max_body_bytes,
            queue_timeout: s.queue_timeout,
        };
        let st = state.clone();
        let http = server::serve(
            listener,
            opts,
            Arc::new(move |req: &Request| handle(&st, req)),
        )
        .map_err(|e| StartError::Io(format!("cannot start the HTTP server: {e}")))?;
        let addr = http.local_addr();
        let maint =
            crate::maintenance::spawn(state.clone()).map_err(|e| StartError::Io(e.to_string()))?;
        // The outbox worker (webhook deliveries, emails); stopped in `Running::shutdown`.
        let outbox =
            crate::outbox::spawn(state.clone()).map_err(|e| StartError::Io(e.to_string()))?;
        state.log.info(
            "listening",
            &[
                ("addr", json!(addr.to_string())),
                ("threads", json!(state.config.server.threads)),
                ("kid", json!(state.keys.active_kid())),
            ],
        );
        Ok(Running {
            state,
            addr,
            http: Some(http),
            threads: vec![maint, outbox],
        })
    }
}

/// A listening socket with a deeper accept backlog than std's 128, so a burst of new
/// connections is queued by the kernel instead of waiting out SYN retransmissions.
fn listen(addr: &str, backlog: i32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

pub struct Running {
    pub state: Arc<AppState>,
    addr: SocketAddr,
    http: Option<ServerHandle>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graceful stop: no new connections, in-flight requests finish, background threads join.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        if let Some(http) = self.http.take() {
            http.stop();
        }
        self.state.maintenance.stop();
        self.state.outbox.shutdown();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.state.log.info("stopped", &[]);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.http.is_some() {
            self.shutdown();
        }
    }
}

/// The whole request path: the one function the connection layer calls.
pub fn handle(state: &AppState, req: &Request) -> Response {
    let started = Instant::now();
    let now = state.now();
    let request_id = respond::request_id(req.header("X-Request-Id"), now);
    let ip = crate::http::input::client_ip(req, &state.config.server.trusted_proxies);
    let mut ctx = api::Ctx::new(request_id, now, ip);
    let lang = crate::ui::request_language(req);
    let result =
        crate::ui::templates::with_request_lang(lang, || api::dispatch(state, &mut ctx, req));
    let (mut resp, error) = match result {
        Ok(r) => (r, None),
        Err(e) => {
            let mut resp = error_response(&e);
            if e.clear_cookies {
                crate::http::cookies::clear_all(&mut resp, &state.config);
            }
            (resp, Some(e))
        }
    };
    set_header(&mut resp, "X-Request-Id", ctx.request_id.clone());
    if req.raw_url().starts_with("/api/v1") {
        set_header(&mut resp, "Cache-Control", "no-store");
    }
    set_header(&mut resp, "X-Content-Type-Options", "nosniff");
    state
        .metrics
        .observe(ctx.route, resp.status_code, started.elapsed().as_secs_f64());
    log_request(state, &ctx, req, &resp, error.as_ref(), started);
    resp
}

fn log_request(
    state: &AppState,
    ctx: &api::Ctx,
    req: &Request,
    resp: &Response,
    error: Option<&ApiError>,
    started: Instant,
) {
    // The path only: query strings can carry tokens (e.g. email links).
    let path = req.url();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut fields = vec![
        ("request_id", json!(ctx.request_id)),
        ("method", json!(req.method())),
        ("path", json!(path)),
        ("route", json!(ctx.route)),
        ("status", json!(resp.status_code)),
        ("ms", json!((ms * 100.0).round() / 100.0)),
        ("ip", json!(ctx.ip.to_string())),
    ];
    if let Some(e) = error {
        fields.push(("code", json!(e.code)));
        if e.status() >= 500 {
            if let Some(d) = &e.detail {
                fields.push(("detail", json!(d)));
            }
            state.log.error("request", &fields);
            return;
        }
    }
    state.log.info("request", &fields);
}
