//! Validation: raw config → public [`Config`](super::Config), one key at a time, each error
//! naming its key. Defaults and allowed ranges live here (and in docs/configuration.md).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::schema::{
    RawArgon2, RawConfig, RawCookies, RawDatabase, RawEmail, RawLog, RawPassword, RawSecurity,
    RawServer, RawTokens, RawWebhooks,
};
use super::{
    Algorithm, Argon2Config, AuditConfig, Config, ConfigError, ConfigSource, CookiesConfig,
    DatabaseConfig, ENV_SECRET_KEY, EmailConfig, EmailTransport, EnvOverrides, LogConfig,
    LogFormat, LogLevel, MAX_DURATION, PasswordConfig, SECRET_KEY_MIN_CHARS, Secret,
    SecurityConfig, ServerConfig, SmtpConfig, SmtpTls, TokensConfig, UiConfig, WebhooksConfig,
    format_duration, parse_duration,
};

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

pub(super) struct Validator<'a> {
    pub(super) source: &'a ConfigSource,
}

type R<T> = Result<T, ConfigError>;

impl Validator<'_> {
    fn err(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.source, Some(key), msg)
    }

    fn duration(
        &self,
        key: &str,
        raw: Option<String>,
        default: Duration,
        min: Duration,
    ) -> R<Duration> {
        let Some(s) = raw else { return Ok(default) };
        let d = self.duration_value(key, &s)?;
        if d < min {
            return Err(self.err(key, format!("must be at least {}", format_duration(min))));
        }
        Ok(d)
    }

    fn duration_value(&self, key: &str, s: &str) -> R<Duration> {
        let d = parse_duration(s).ok_or_else(|| {
            self.err(
                key,
                format!("invalid duration {s:?}: expected digits and a unit (ms, s, m, h, d), like \"10s\""),
            )
        })?;
        if d > MAX_DURATION {
            return Err(self.err(
                key,
                format!("must be at most {}", format_duration(MAX_DURATION)),
            ));
        }
        Ok(d)
    }

    /// An integer in `min..=max`, converted to the target type.
    fn int<T: TryFrom<i64>>(
        &self,
        key: &str,
        raw: Option<i64>,
        default: T,
        min: i64,
        max: i64,
    ) -> R<T> {
        let Some(n) = raw else { return Ok(default) };
        if n < min || n > max {
            return Err(self.err(key, format!("must be between {min} and {max} (got {n})")));
        }
        T::try_from(n).map_err(|_| self.err(key, format!("{n} is out of range")))
    }

    fn choice<T: Copy>(
        &self,
        key: &str,
        raw: Option<String>,
        default: T,
        options: &[(&str, T)],
    ) -> R<T> {
        let Some(s) = raw else { return Ok(default) };
        match options.iter().find(|(name, _)| *name == s) {
            Some((_, v)) => Ok(*v),
            None => {
                let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
                Err(self.err(
                    key,
                    format!("must be one of {} (got {s:?})", names.join(", ")),
                ))
            }
        }
    }

    fn nonempty(&self, key: &str, raw: Option<String>, default: &str) -> R<String> {
        let s = raw.unwrap_or_else(|| default.to_owned());
        if s.trim().is_empty() {
            return Err(self.err(key, "must not be empty"));
        }
        Ok(s)
    }

    /// An absolute http(s) URL, stored without trailing slashes.
    fn base_url(&self, key: &str, s: &str) -> R<String> {
        let trimmed = s.trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .ok_or_else(|| {
                self.err(
                    key,
                    format!("must start with http:// or https:// (got {s:?})"),
                )
            })?;
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() || trimmed.contains(|c: char| c.is_whitespace() || c == '?' || c == '#')
        {
            return Err(self.err(key, format!("is not a valid base URL: {s:?}")));
        }
        Ok(trimmed.to_owned())
    }

    /// A browser origin: `scheme://host[:port]`, lower-cased, no path.
    fn origin(&self, key: &str, s: &str) -> R<String> {
        let url = self.base_url(key, s)?;
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        if rest.contains('/') {
            return Err(self.err(
                key,
                format!("an origin has no path: {s:?} (like \"https://app.example.com\")"),
            ));
        }
        Ok(url.to_ascii_lowercase())
    }

    /// A host for `security.allowed_app_hosts`: a lower-case DNS name or IP literal, or
    /// `*.` + a name (any subdomain of it); no scheme, port or path.
    fn app_host(&self, key: &str, s: &str) -> R<String> {
        let h = s.trim().to_ascii_lowercase();
        let name = h.strip_prefix("*.").unwrap_or(&h);
        let ok = !name.is_empty()
            && name.len() <= 253
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(self.err(
                key,
                format!(
                    "a host name like \"app.example.com\" or \"*.example.com\" (no scheme, port or path): {s:?}"
                ),
            ));
        }
        Ok(h)
    }

    /// `[ui]`: the templates directory must exist, and every template in it must compile
    /// (`check-config` and `serve` then refuse a broken override, naming the file).
    fn ui(&self, r: super::schema::RawUi) -> R<UiConfig> {
        let Some(dir) = r.templates_dir.filter(|d| !d.trim().is_empty()) else {
            return Ok(UiConfig::default());
        };
        let path = std::path::PathBuf::from(&dir);
        if !path.is_dir() {
            return Err(self.err("ui.templates_dir", format!("{dir:?} is not a directory")));
        }
        crate::ui::templates::Ui::load(Some(&path)).map_err(|e| self.err("ui.templates_dir", e))?;
        Ok(UiConfig {
            templates_dir: Some(path),
        })
    }

    pub(super) fn config(&self, raw: RawConfig, env: &EnvOverrides) -> R<Config> {
        Ok(Config {
            source: self.source.clone(),
            server: self.server(raw.server)?,
            database: self.database(raw.database)?,
            tokens: self.tokens(raw.tokens)?,
            cookies: self.cookies(raw.cookies)?,
            security: self.security(raw.security, env)?,
            password: self.password(raw.password)?,
            argon2: self.argon2(raw.argon2)?,
            email: self.email(raw.email, env)?,
            webhooks: self.webhooks(raw.webhooks)?,
            log: self.log(raw.log)?,
            audit: AuditConfig {
                retention: self.duration("audit.retention", raw.audit.retention, 365 * DAY, SEC)?,
            },
            ui: self.ui(raw.ui)?,
            workos: crate::config::WorkosConfig {
                enabled: raw.workos.enabled.unwrap_or(false),
            },
        })
    }

    fn server(&self, r: RawServer) -> R<ServerConfig> {
        let bind = self.nonempty("server.bind", r.bind, "127.0.0.1:8080")?;
        if bind.parse::<SocketAddr>().is_err() {
            return Err(self.err(
                "server.bind",
                format!(
                    "{bind:?} is not a socket address like \"127.0.0.1:8080\" or \"[::]:8080\""
                ),
            ));
        }
        let public_url = self.base_url(
            "server.public_url",
            r.public_url.as_deref().unwrap_or("http://localhost:8080"),
        )?;
        let mut trusted_proxies = Vec::new();
        for (i, s) in r.trusted_proxies.unwrap_or_default().iter().enumerate() {
            let ip = s.trim().parse::<IpAddr>().map_err(|_| {
                self.err(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("{s:?} is not an IP address (single addresses only, no CIDR ranges)"),
                )
            })?;
            trusted_proxies.push(ip);
        }
        Ok(ServerConfig {
            bind,
            public_url,
            threads: self.int("server.threads", r.threads, 8, 1, 1024)?,
            max_body_bytes: self.int(
                "server.max_body_bytes",
                r.max_body_bytes,
                1_048_576,
                1024,
                i64::MAX,
            )?,
            trusted_proxies,
            idle_timeout: self.duration("server.idle_timeout", r.idle_timeout, 30 * SEC, SEC)?,
            queue_timeout: self.duration(
                "server.queue_timeout",
                r.queue_timeout,
                2 * SEC,
                SEC / 1000,
            )?,
            read_timeout: self.duration("server.read_timeout", r.read_timeout, 10 * SEC, SEC)?,
            max_connections: self.int(
                "server.max_connections",
                r.max_connections,
                1024,
                1,
                1_000_000,
            )?,
            max_header_bytes: self.int(
                "server.max_header_bytes",
                r.max_header_bytes,
                16_384,
                1024,
                1_048_576,
            )?,
            max_headers: self.int("server.max_headers", r.max_headers, 100, 1, 10_000)?,
        })
    }

    fn database(&self, r: RawDatabase) -> R<DatabaseConfig> {
        Ok(DatabaseConfig {
            path: PathBuf::from(self.nonempty("database.path", r.path, "./latchkey.db")?),
            busy_timeout: self.duration(
                "database.busy_timeout",
                r.busy_timeout,
                5 * SEC,
                Duration::from_millis(1),
            )?,
        })
    }

    fn tokens(&self, r: RawTokens) -> R<TokensConfig> {
        let refresh_ttl = self.duration("tokens.refresh_ttl", r.refresh_ttl, 7 * DAY, SEC)?;
        let refresh_grace = self.duration(
            "tokens.refresh_grace",
            r.refresh_grace,
            10 * SEC,
            Duration::ZERO,
        )?;
        if refresh_grace >= refresh_ttl {
            return Err(self.err(
                "tokens.refresh_grace",
                "must be shorter than tokens.refresh_ttl",
            ));
        }
        Ok(TokensConfig {
            access_ttl: self.duration("tokens.access_ttl", r.access_ttl, 900 * SEC, SEC)?,
            refresh_ttl,
            refresh_grace,
            session_max_age: self.duration(
                "tokens.session_max_age",
                r.session_max_age,
                30 * DAY,
                SEC,
            )?,
            partial_ttl: self.duration("tokens.partial_ttl", r.partial_ttl, 5 * MIN, SEC)?,
            algorithm: self.choice(
                "tokens.algorithm",
                r.algorithm,
                Algorithm::EdDSA,
                &[
                    ("EdDSA", Algorithm::EdDSA),
                    ("ES256", Algorithm::ES256),
                    ("RS256", Algorithm::RS256),
                ],
            )?,
            audience: self.nonempty("tokens.audience", r.audience, "latchkey")?,
        })
    }

    fn cookies(&self, r: RawCookies) -> R<CookiesConfig> {
        if let Some(d) = &r.domain {
            let ok = !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !ok {
                return Err(self.err("cookies.domain", format!("{d:?} is not a domain name")));
            }
        }
        Ok(CookiesConfig {
            secure: r.secure.unwrap_or(true),
            domain: r.domain,
        })
    }

    fn security(&self, r: RawSecurity, env: &EnvOverrides) -> R<SecurityConfig> {
        const KEY: &str = "security.secret_key";
        let (secret, from_env) = match (&env.secret_key, r.secret_key) {
            (Some(v), _) => (Some(v.clone()), true),
            (None, v) => (v, false),
        };
        let secret_key = match secret {
            Some(s) if s.chars().count() < SECRET_KEY_MIN_CHARS => {
                let via = if from_env {
                    format!(" (from {ENV_SECRET_KEY})")
                } else {
                    String::new()
                };
                return Err(self.err(
                    KEY,
                    format!("must be at least {SECRET_KEY_MIN_CHARS} characters{via}"),
                ));
            }
            Some(s) => Some(Secret::new(s)),
            None if matches!(self.source, ConfigSource::File(_)) => {
                return Err(self.err(
                    KEY,
                    format!(
                        "required; run `latchkey init` to generate one or set {ENV_SECRET_KEY}"
                    ),
                ));
            }
            None => None,
        };
        let mut allowed_origins = Vec::new();
        for (i, s) in r.allowed_origins.unwrap_or_default().iter().enumerate() {
            allowed_origins.push(self.origin(&format!("security.allowed_origins[{i}]"), s)?);
        }
        let mut allowed_app_hosts = Vec::new();
        for (i, h) in r.allowed_app_hosts.unwrap_or_default().iter().enumerate() {
            allowed_app_hosts.push(self.app_host(&format!("security.allowed_app_hosts[{i}]"), h)?);
        }
        let hashes: usize = self.int(
            "security.max_concurrent_hashes",
            r.max_concurrent_hashes,
            0,
            0,
            1024,
        )?;
        let max_concurrent_hashes = if hashes == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            hashes
        };
        let per = |key: &str, raw: Option<i64>, default: u32| {
            self.int(key, raw, default, 1, u32::MAX as i64)
        };
        Ok(SecurityConfig {
            secret_key,
            allowed_origins,
            allowed_app_hosts,
            max_concurrent_hashes,
            hash_queue: self.int("security.hash_queue", r.hash_queue, 64, 0, 1_000_000)?,
            login_max_failures: per("security.login_max_failures", r.login_max_failures, 5)?,
            login_failure_window: self.duration(
                "security.login_failure_window",
                r.login_failure_window,
                15 * MIN,
                SEC,
            )?,
            lockout: self.duration("security.lockout", r.lockout, 15 * MIN, SEC)?,
            account_max_failures: per(
                "security.account_max_failures",
                r.account_max_failures,
                100,
            )?,
            account_failure_window: self.duration(
                "security.account_failure_window",
                r.account_failure_window,
                60 * MIN,
                SEC,
            )?,
            second_factor_max_failures: per(
                "security.second_factor_max_failures",
                r.second_factor_max_failures,
                10,
            )?,
            second_factor_window: self.duration(
                "security.second_factor_window",
                r.second_factor_window,
                15 * MIN,
                SEC,
            )?,
            api_key_login_failures_per_minute: per(
                "security.api_key_login_failures_per_minute",
                r.api_key_login_failures_per_minute,
                30,
            )?,
            login_ip_per_minute: per("security.login_ip_per_minute", r.login_ip_per_minute, 20)?,
            public_api_per_minute: per(
                "security.public_api_per_minute",
                r.public_api_per_minute,
                600,
            )?,
            email_per_hour: per("security.email_per_hour", r.email_per_hour, 3)?,
            email_ip_per_hour: per("security.email_ip_per_hour", r.email_ip_per_hour, 20)?,
        })
    }

    fn password(&self, r: RawPassword) -> R<PasswordConfig> {
        let max_length: usize = self.int("password.max_length", r.max_length, 128, 1, 1024)?;
        let min_length: usize = self.int("password.min_length", r.min_length, 8, 1, 1024)?;
        if min_length > max_length {
            return Err(self.err(
                "password.min_length",
                format!("must not exceed password.max_length ({max_length})"),
            ));
        }
        Ok(PasswordConfig {
            min_length,
            max_length,
            reject_common: r.reject_common.unwrap_or(true),
        })
    }

    fn argon2(&self, r: RawArgon2) -> R<Argon2Config> {
        let parallelism: u32 = self.int("argon2.parallelism", r.parallelism, 1, 1, 255)?;
        let memory_kib: u32 = self.int(
            "argon2.memory_kib",
            r.memory_kib,
            19_456,
            8,
            u32::MAX as i64,
        )?;
        if u64::from(memory_kib) < 8 * u64::from(parallelism) {
            return Err(self.err(
                "argon2.memory_kib",
                format!(
                    "must be at least 8 × argon2.parallelism ({})",
                    8 * parallelism
                ),
            ));
        }
        Ok(Argon2Config {
            memory_kib,
            iterations: self.int("argon2.iterations", r.iterations, 2, 1, u32::MAX as i64)?,
            parallelism,
        })
    }

    fn email(&self, r: RawEmail, env: &EnvOverrides) -> R<EmailConfig> {
        let from = self.nonempty("email.from", r.from, "Latchkey <no-reply@localhost>")?;
        if !from.contains('@') || from.contains(['\r', '\n']) {
            return Err(self.err("email.from", format!("{from:?} is not a mail address")));
        }
        let link_base_url = match r.link_base_url {
            Some(s) => Some(self.base_url("email.link_base_url", &s)?),
            None => None,
        };
        let s = r.smtp;
        let host = self.nonempty("email.smtp.host", s.host, "localhost")?;
        if host.contains(char::is_whitespace) {
            return Err(self.err("email.smtp.host", format!("{host:?} is not a host name")));
        }
        let password = env
            .smtp_password
            .clone()
            .or(s.password)
            .filter(|p| !p.is_empty())
            .map(Secret::new);
        Ok(EmailConfig {
            transport: self.choice(
                "email.transport",
                r.transport,
                EmailTransport::Log,
                &[("log", EmailTransport::Log), ("smtp", EmailTransport::Smtp)],
            )?,
            from,
            link_base_url,
            smtp: SmtpConfig {
                host,
                port: self.int("email.smtp.port", s.port, 587, 1, 65_535)?,
                username: s.username.filter(|u| !u.is_empty()),
                password,
                tls: self.choice(
                    "email.smtp.tls",
                    s.tls,
                    SmtpTls::Starttls,
                    &[
                        ("off", SmtpTls::Off),
                        ("starttls", SmtpTls::Starttls),
                        ("tls", SmtpTls::Tls),
                    ],
                )?,
                timeout: self.duration("email.smtp.timeout", s.timeout, 10 * SEC, SEC)?,
            },
        })
    }

    fn webhooks(&self, r: RawWebhooks) -> R<WebhooksConfig> {
        let retry_schedule = match r.retry_schedule {
            None => vec![MIN, 5 * MIN, 30 * MIN, 2 * HOUR, 6 * HOUR, 24 * HOUR],
            Some(list) if list.is_empty() => {
                return Err(self.err("webhooks.retry_schedule", "must list at least one delay"));
            }
            Some(list) if list.len() > 100 => {
                return Err(self.err("webhooks.retry_schedule", "must list at most 100 delays"));
            }
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for (i, s) in list.iter().enumerate() {
                    let key = format!("webhooks.retry_schedule[{i}]");
                    let d = self.duration_value(&key, s)?;
                    if d < SEC {
                        return Err(self.err(&key, "must be at least 1s"));
                    }
                    out.push(d);
                }
                out
            }
        };
        Ok(WebhooksConfig {
            timeout: self.duration("webhooks.timeout", r.timeout, 10 * SEC, SEC)?,
            retry_schedule,
            allow_http: r.allow_http.unwrap_or(false),
            allow_private_addresses: r.allow_private_addresses.unwrap_or(false),
            retention: self.duration("webhooks.retention", r.retention, 30 * DAY, SEC)?,
        })
    }

    fn log(&self, r: RawLog) -> R<LogConfig> {
        Ok(LogConfig {
            format: self.choice(
                "log.format",
                r.format,
                LogFormat::Text,
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?,
            level: self.choice(
                "log.level",
                r.level,
                LogLevel::Info,
                &[
                    ("error", LogLevel::Error),
                    ("warn", LogLevel::Warn),
                    ("info", LogLevel::Info),
                    ("debug", LogLevel::Debug),
                ],
            )?,
        })
    }
}
