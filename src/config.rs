//! Configuration: TOML text (unknown keys refused) → one validated [`Config`], built once at start.
//!
//! Loading happens in three steps so that every error can name the file and the dotted key:
//! the text is parsed into a `toml::Table`; that table is walked against the key list (unknown
//! keys and wrong value kinds are refused there, by name); then the raw serde structs, whose
//! fields are all optional, are checked one key at a time into the public types. Secrets live in
//! [`Secret`], which cannot be printed, so `{:?}` of a `Config` is safe to log.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod schema;
mod validate;

use schema::{RawConfig, SCHEMA, check_table};
use validate::Validator;

/// The fully commented example configuration; `latchkey config example` prints it.
pub const EXAMPLE: &str = include_str!("../config.example.toml");

/// What `serve` runs on when no config file is given. Not for production: cookies are not
/// `Secure`, webhooks may use plain HTTP, and the secret key is generated on first start and kept
/// in the database (unless `LATCHKEY_SECRET_KEY` is set).
pub const DEV_DEFAULT: &str = r#"# Latchkey embedded development default (used when no --config is given).
[server]
bind = "127.0.0.1:8080"
public_url = "http://localhost:8080"

[database]
path = "./latchkey.db"

[cookies]
secure = false

[security]
allowed_origins = ["http://localhost:8080", "http://localhost:3000", "http://localhost:5173"]
allowed_app_hosts = ["localhost", "127.0.0.1"]

[webhooks]
allow_http = true

[workos]
enabled = true
"#;

/// Overrides `security.secret_key`.
pub const ENV_SECRET_KEY: &str = "LATCHKEY_SECRET_KEY";
/// Overrides `email.smtp.password`.
pub const ENV_SMTP_PASSWORD: &str = "LATCHKEY_SMTP_PASSWORD";

/// The `secret_key` value in [`EXAMPLE`]; [`init_text`] replaces it.
pub const SECRET_PLACEHOLDER: &str = "replace-me-with-at-least-32-random-characters";

/// Minimum length of `security.secret_key`, in characters.
pub const SECRET_KEY_MIN_CHARS: usize = 32;

/// Longest duration any key accepts (100 years): keeps `now + ttl` far from i64 overflow.
const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// JWT signing algorithm for access tokens (defined with the token code).
pub use crate::tokens::Algorithm;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(&self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Log verbosity; ordered from quietest to noisiest (`Error < Warn < Info < Debug`), so a line
/// at level `l` is written when `l <= config.log.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn as_str(&self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EmailTransport {
    /// Mails are written to the log instead of being sent (development).
    Log,
    Smtp,
}

impl EmailTransport {
    pub fn as_str(&self) -> &'static str {
        match self {
            EmailTransport::Log => "log",
            EmailTransport::Smtp => "smtp",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SmtpTls {
    /// Plain text (only for a relay on localhost or a test sink).
    Off,
    /// Connect in plain text, then require `STARTTLS` (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

impl SmtpTls {
    pub fn as_str(&self) -> &'static str {
        match self {
            SmtpTls::Off => "off",
            SmtpTls::Starttls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }
}

/// Where a [`Config`] came from; error messages and the start-up banner name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    EmbeddedDefault,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::EmbeddedDefault => f.write_str("embedded default"),
        }
    }
}

/// A secret string: `Debug` and `Display` print `[redacted]`; [`Secret::expose`] gives the text.
/// Deliberately not `PartialEq`: compare secrets with `crypto::ct_eq` on the exposed bytes.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The validated configuration. Build it with [`Config::load`] or [`Config::from_toml_str`].
#[derive(Clone, Debug)]
pub struct Config {
    pub source: ConfigSource,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub tokens: TokensConfig,
    pub cookies: CookiesConfig,
    pub security: SecurityConfig,
    pub password: PasswordConfig,
    pub argon2: Argon2Config,
    pub email: EmailConfig,
    pub webhooks: WebhooksConfig,
    pub log: LogConfig,
    pub audit: AuditConfig,
    pub ui: UiConfig,
    pub workos: WorkosConfig,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// A socket address (already checked to parse as one).
    pub bind: String,
    /// Absolute base URL, no trailing slash; also the JWT `iss`.
    pub public_url: String,
    pub threads: usize,
    pub max_body_bytes: u64,
    pub trusted_proxies: Vec<IpAddr>,
    pub idle_timeout: Duration,
    /// A request that waited longer than this for a free worker is answered 503 at once.
    pub queue_timeout: Duration,
    pub read_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub path: PathBuf,
    pub busy_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct TokensConfig {
    pub access_ttl: Duration,
    /// Idle lifetime of a refresh token.
    pub refresh_ttl: Duration,
    pub refresh_grace: Duration,
    /// Absolute lifetime of a session, however often it is refreshed.
    pub session_max_age: Duration,
    pub partial_ttl: Duration,
    pub algorithm: Algorithm,
    pub audience: String,
}

#[derive(Clone, Debug)]
pub struct CookiesConfig {
    pub secure: bool,
    pub domain: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SecurityConfig {
    /// `None` only for the embedded default without `LATCHKEY_SECRET_KEY`: the app then
    /// generates one and keeps it in the database.
    pub secret_key: Option<Secret>,
    /// Origins as browsers send them: lower-case `scheme://host[:port]`, no trailing slash.
    pub allowed_origins: Vec<String>,
    /// Hosts an org admin may point `appUrl` at (lower-case; `*.example.com` = any subdomain).
    pub allowed_app_hosts: Vec<String>,
    /// Already resolved: a `0` in the file becomes the number of available cores.
    pub max_concurrent_hashes: usize,
    pub hash_queue: usize,
    pub login_max_failures: u32,
    pub login_failure_window: Duration,
    pub lockout: Duration,
    /// Failed logins for one account from all IPs within `account_failure_window` that lock
    /// the whole account for `lockout` (the per-IP pair locks after `login_max_failures`).
    pub account_max_failures: u32,
    pub account_failure_window: Duration,
    /// Wrong second-factor codes per account within `second_factor_window` → 429.
    pub second_factor_max_failures: u32,
    pub second_factor_window: Duration,
    /// Failed logins through one API key (`/public/authenticate`) per minute → 429.
    pub api_key_login_failures_per_minute: u32,
    pub login_ip_per_minute: u32,
    pub public_api_per_minute: u32,
    pub email_per_hour: u32,
    pub email_ip_per_hour: u32,
}

#[derive(Clone, Debug)]
pub struct PasswordConfig {
    pub min_length: usize,
    pub max_length: usize,
    pub reject_common: bool,
}

#[derive(Clone, Debug)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Clone, Debug)]
pub struct EmailConfig {
    pub transport: EmailTransport,
    pub from: String,
    /// Base for links in mails, no trailing slash; `None` means `server.public_url`
    /// (see [`Config::email_link_base`]).
    pub link_base_url: Option<String>,
    pub smtp: SmtpConfig,
}

#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: SmtpTls,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct WebhooksConfig {
    pub timeout: Duration,
    pub retry_schedule: Vec<Duration>,
    pub allow_http: bool,
    pub allow_private_addresses: bool,
    pub retention: Duration,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: LogLevel,
}

#[derive(Clone, Debug)]
pub struct AuditConfig {
    pub retention: Duration,
}

#[derive(Clone, Debug, Default)]
pub struct UiConfig {
    /// Files here replace the embedded page and email templates of the same name.
    pub templates_dir: Option<std::path::PathBuf>,
}

/// The WorkOS-compatible API (API.md §14, docs/workos.md).
#[derive(Clone, Debug, Default)]
pub struct WorkosConfig {
    /// Answer WorkOS's User Management API at the root paths the SDKs call.
    pub enabled: bool,
}

/// Why a configuration was refused. `Display`:
/// `<file or "embedded default">: <dotted.key>: <message>`, or `<file>: <message>` when no single
/// key is at fault (unreadable file, TOML syntax error with its line and column).
/// Messages never contain a secret's value.
#[derive(Clone, Debug)]
pub struct ConfigError {
    origin: String,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    fn new(source: &ConfigSource, key: Option<&str>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: source.to_string(),
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }
    /// The file (or `embedded default`) the error is about.
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// The dotted key at fault, e.g. `server.bind` or `server.trusted_proxies[1]`.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{}: {}: {}", self.origin, k, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Values taken from the environment that override the file. Empty variables count as unset.
#[derive(Clone, Default)]
pub struct EnvOverrides {
    /// From `LATCHKEY_SECRET_KEY`.
    pub secret_key: Option<String>,
    /// From `LATCHKEY_SMTP_PASSWORD`.
    pub smtp_password: Option<String>,
}

impl fmt::Debug for EnvOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<String>| if v.is_some() { "[redacted]" } else { "None" };
        f.debug_struct("EnvOverrides")
            .field("secret_key", &shown(&self.secret_key))
            .field("smtp_password", &shown(&self.smtp_password))
            .finish()
    }
}

impl EnvOverrides {
    /// Reads `LATCHKEY_SECRET_KEY` and `LATCHKEY_SMTP_PASSWORD` from the process environment.
    pub fn from_process(source: &ConfigSource) -> Result<Self, ConfigError> {
        let read = |name: &str, key: &str| match std::env::var(name) {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(
                source,
                Some(key),
                format!("{name} is set but is not valid UTF-8"),
            )),
        };
        Ok(EnvOverrides {
            secret_key: read(ENV_SECRET_KEY, "security.secret_key")?,
            smtp_password: read(ENV_SMTP_PASSWORD, "email.smtp.password")?,
        })
    }
}

impl Config {
    /// `None` → the embedded development default ([`DEV_DEFAULT`]); `Some(path)` → read and
    /// validate that file. Environment overrides are applied in both cases.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Config::from_toml_str(DEV_DEFAULT, ConfigSource::EmbeddedDefault),
            Some(p) => {
                let source = ConfigSource::File(p.to_path_buf());
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::new(&source, None, format!("cannot read: {e}")))?;
                Config::from_toml_str(&text, source)
            }
        }
    }

    /// Parses and validates TOML text; `source` names it in messages and decides whether a
    /// missing `security.secret_key` is an error (it is for a file). Applies the environment
    /// overrides of the current process; [`Config::from_toml_str_with_env`] takes them explicitly.
    pub fn from_toml_str(text: &str, source: ConfigSource) -> Result<Config, ConfigError> {
        let env = EnvOverrides::from_process(&source)?;
        Config::from_toml_str_with_env(text, source, &env)
    }

    /// Like [`Config::from_toml_str`], with the environment overrides given (deterministic).
    pub fn from_toml_str_with_env(
        text: &str,
        source: ConfigSource,
        env: &EnvOverrides,
    ) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::new(&source, None, syntax_message(text, &e))
        })?;
        check_table(&table, SCHEMA, "", &source)?;
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::new(&source, None, e.message()))?;
        Validator { source: &source }.config(raw, env)
    }

    /// True when running on the embedded development default rather than a file.
    pub fn is_dev_default(&self) -> bool {
        self.source == ConfigSource::EmbeddedDefault
    }

    /// Base URL for links in mails: `email.link_base_url`, else `server.public_url`.
    /// Whether an org admin may point `appUrl` at `host` (`security.allowed_app_hosts`).
    pub fn app_host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.security
            .allowed_app_hosts
            .iter()
            .any(|h| match h.strip_prefix("*.") {
                Some(parent) => host
                    .strip_suffix(parent)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => *h == host,
            })
    }

    pub fn email_link_base(&self) -> &str {
        self.email
            .link_base_url
            .as_deref()
            .unwrap_or(&self.server.public_url)
    }

    /// True when `security.secret_key` is still the placeholder from the example config.
    pub fn secret_is_placeholder(&self) -> bool {
        self.security
            .secret_key
            .as_ref()
            .is_some_and(|s| s.expose() == SECRET_PLACEHOLDER)
    }

    /// Refuses the example config's placeholder `security.secret_key` (it is public, so
    /// everything sealed or signed with it could be forged): `check-config` and `serve` call
    /// this. Other commands still run, so a deployment can be backed up before it is fixed.
    pub fn refuse_placeholder_secret(&self) -> Result<(), ConfigError> {
        if !self.secret_is_placeholder() {
            return Ok(());
        }
        Err(ConfigError::new(
            &self.source,
            Some("security.secret_key"),
            format!(
                "is the example config's placeholder; run `latchkey init` to write a config with a \
                 generated one, or set {ENV_SECRET_KEY}"
            ),
        ))
    }
}

/// The text `latchkey init` writes: [`EXAMPLE`] with `secret_key` set to the given value.
pub fn init_text(secret_key: &str) -> String {
    let quoted = toml::Value::String(secret_key.to_owned()).to_string();
    EXAMPLE.replacen(
        &format!("secret_key = \"{SECRET_PLACEHOLDER}\""),
        &format!("secret_key = {quoted}"),
        1,
    )
}

/// Parses `"900ms"`, `"10s"`, `"15m"`, `"2h"`, `"7d"`: ASCII digits then exactly one unit.
/// Refuses a missing unit, signs, fractions, spaces, compound forms, and anything whose length
/// in milliseconds would not fit an `i64`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    if split == 0 {
        return None;
    }
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3_600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    };
    (d.as_millis() <= i64::MAX as u128).then_some(d)
}

/// The shortest exact spelling of `d` in the config's duration syntax (`"15m"`, `"900ms"`).
fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match s {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `line L, column C: <toml's message>`: position from the span, never the offending source
/// line itself (it could hold a secret).
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let Some(span) = e.span() else {
        return format!("invalid TOML: {msg}");
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("invalid TOML at line {line}, column {column}: {msg}")
}

#[cfg(test)]
mod tests;
