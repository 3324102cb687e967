//! The shape of a config file: every known key with the kind of value it takes (walked before
//! deserializing, so an unknown key or a wrong type is refused by its full dotted name), and the
//! raw serde structs, all fields optional, that the validator turns into the public types.

use serde::Deserialize;

use super::{ConfigError, ConfigSource};

/// The kind of TOML value a key takes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    Str,
    Int,
    Bool,
    Duration,
    StrList,
    DurationList,
    Table(&'static [(&'static str, Kind)]),
}

pub(super) const SCHEMA: &[(&str, Kind)] = &[
    ("server", Kind::Table(SERVER_KEYS)),
    ("database", Kind::Table(DATABASE_KEYS)),
    ("tokens", Kind::Table(TOKENS_KEYS)),
    ("cookies", Kind::Table(COOKIES_KEYS)),
    ("security", Kind::Table(SECURITY_KEYS)),
    ("password", Kind::Table(PASSWORD_KEYS)),
    ("argon2", Kind::Table(ARGON2_KEYS)),
    ("email", Kind::Table(EMAIL_KEYS)),
    ("webhooks", Kind::Table(WEBHOOKS_KEYS)),
    ("log", Kind::Table(LOG_KEYS)),
    ("audit", Kind::Table(AUDIT_KEYS)),
    ("ui", Kind::Table(UI_KEYS)),
    ("workos", Kind::Table(WORKOS_KEYS)),
];

const SERVER_KEYS: &[(&str, Kind)] = &[
    ("bind", Kind::Str),
    ("public_url", Kind::Str),
    ("threads", Kind::Int),
    ("max_body_bytes", Kind::Int),
    ("trusted_proxies", Kind::StrList),
    ("idle_timeout", Kind::Duration),
    ("queue_timeout", Kind::Duration),
    ("read_timeout", Kind::Duration),
    ("max_connections", Kind::Int),
    ("max_header_bytes", Kind::Int),
    ("max_headers", Kind::Int),
];
const DATABASE_KEYS: &[(&str, Kind)] = &[("path", Kind::Str), ("busy_timeout", Kind::Duration)];
const TOKENS_KEYS: &[(&str, Kind)] = &[
    ("access_ttl", Kind::Duration),
    ("refresh_ttl", Kind::Duration),
    ("refresh_grace", Kind::Duration),
    ("session_max_age", Kind::Duration),
    ("partial_ttl", Kind::Duration),
    ("algorithm", Kind::Str),
    ("audience", Kind::Str),
];
const COOKIES_KEYS: &[(&str, Kind)] = &[("secure", Kind::Bool), ("domain", Kind::Str)];
const SECURITY_KEYS: &[(&str, Kind)] = &[
    ("secret_key", Kind::Str),
    ("allowed_origins", Kind::StrList),
    ("allowed_app_hosts", Kind::StrList),
    ("max_concurrent_hashes", Kind::Int),
    ("hash_queue", Kind::Int),
    ("login_max_failures", Kind::Int),
    ("login_failure_window", Kind::Duration),
    ("lockout", Kind::Duration),
    ("account_max_failures", Kind::Int),
    ("account_failure_window", Kind::Duration),
    ("second_factor_max_failures", Kind::Int),
    ("second_factor_window", Kind::Duration),
    ("api_key_login_failures_per_minute", Kind::Int),
    ("login_ip_per_minute", Kind::Int),
    ("public_api_per_minute", Kind::Int),
    ("email_per_hour", Kind::Int),
    ("email_ip_per_hour", Kind::Int),
];
const PASSWORD_KEYS: &[(&str, Kind)] = &[
    ("min_length", Kind::Int),
    ("max_length", Kind::Int),
    ("reject_common", Kind::Bool),
];
const ARGON2_KEYS: &[(&str, Kind)] = &[
    ("memory_kib", Kind::Int),
    ("iterations", Kind::Int),
    ("parallelism", Kind::Int),
];
const EMAIL_KEYS: &[(&str, Kind)] = &[
    ("transport", Kind::Str),
    ("from", Kind::Str),
    ("link_base_url", Kind::Str),
    ("smtp", Kind::Table(SMTP_KEYS)),
];
const SMTP_KEYS: &[(&str, Kind)] = &[
    ("host", Kind::Str),
    ("port", Kind::Int),
    ("username", Kind::Str),
    ("password", Kind::Str),
    ("tls", Kind::Str),
    ("timeout", Kind::Duration),
];
const WEBHOOKS_KEYS: &[(&str, Kind)] = &[
    ("timeout", Kind::Duration),
    ("retry_schedule", Kind::DurationList),
    ("allow_http", Kind::Bool),
    ("allow_private_addresses", Kind::Bool),
    ("retention", Kind::Duration),
];
const LOG_KEYS: &[(&str, Kind)] = &[("format", Kind::Str), ("level", Kind::Str)];
const AUDIT_KEYS: &[(&str, Kind)] = &[("retention", Kind::Duration)];
const UI_KEYS: &[(&str, Kind)] = &[("templates_dir", Kind::Str)];
const WORKOS_KEYS: &[(&str, Kind)] = &[("enabled", Kind::Bool)];

pub(super) fn check_table(
    table: &toml::Table,
    schema: &[(&str, Kind)],
    prefix: &str,
    source: &ConfigSource,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let Some((_, kind)) = schema.iter().find(|(n, _)| *n == name.as_str()) else {
            let known: Vec<&str> = schema.iter().map(|(n, _)| *n).collect();
            let msg = if prefix.is_empty() {
                format!("unknown section; known sections: {}", known.join(", "))
            } else {
                format!(
                    "unknown key; known keys in [{prefix}]: {}",
                    known.join(", ")
                )
            };
            return Err(ConfigError::new(source, Some(&path), msg));
        };
        check_value(value, *kind, &path, source)?;
    }
    Ok(())
}

fn check_value(
    value: &toml::Value,
    kind: Kind,
    path: &str,
    source: &ConfigSource,
) -> Result<(), ConfigError> {
    use toml::Value as V;
    let wrong = |expected: &str, v: &V| {
        ConfigError::new(
            source,
            Some(path),
            format!("expected {expected}, found {}", article(v.type_str())),
        )
    };
    match (kind, value) {
        (Kind::Table(sub), V::Table(t)) => check_table(t, sub, path, source),
        (Kind::Table(_), v) => Err(wrong(&format!("a table [{path}]"), v)),
        (Kind::Str, V::String(_)) | (Kind::Int, V::Integer(_)) | (Kind::Bool, V::Boolean(_)) => {
            Ok(())
        }
        (Kind::Str, v) => Err(wrong("a string", v)),
        (Kind::Int, v) => Err(wrong("an integer", v)),
        (Kind::Bool, v) => Err(wrong("a boolean (true or false)", v)),
        (Kind::Duration, V::String(_)) => Ok(()),
        (Kind::Duration, v) => Err(wrong(DURATION_EXPECTED, v)),
        (Kind::StrList | Kind::DurationList, V::Array(items)) => {
            let (expected, _) = list_item(kind);
            for (i, item) in items.iter().enumerate() {
                if !item.is_str() {
                    let at = format!("{path}[{i}]");
                    return Err(ConfigError::new(
                        source,
                        Some(&at),
                        format!("expected {expected}, found {}", article(item.type_str())),
                    ));
                }
            }
            Ok(())
        }
        (Kind::StrList | Kind::DurationList, v) => Err(wrong(list_item(kind).1, v)),
    }
}

const DURATION_EXPECTED: &str = "a duration string with a unit (ms, s, m, h, d), like \"10s\"";

fn list_item(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::DurationList => (
            DURATION_EXPECTED,
            "a list of duration strings, like [\"1m\", \"5m\"]",
        ),
        _ => ("a string", "a list of strings"),
    }
}

fn article(type_str: &str) -> String {
    match type_str {
        "integer" | "array" => format!("an {type_str}"),
        other => format!("a {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw serde structs: every field optional; unknown fields refused (the walk above already
// named them, this is the second line of defence).
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) database: RawDatabase,
    pub(super) tokens: RawTokens,
    pub(super) cookies: RawCookies,
    pub(super) security: RawSecurity,
    pub(super) password: RawPassword,
    pub(super) argon2: RawArgon2,
    pub(super) email: RawEmail,
    pub(super) webhooks: RawWebhooks,
    pub(super) log: RawLog,
    pub(super) audit: RawAudit,
    pub(super) ui: RawUi,
    pub(super) workos: RawWorkos,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) bind: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) threads: Option<i64>,
    pub(super) max_body_bytes: Option<i64>,
    pub(super) trusted_proxies: Option<Vec<String>>,
    pub(super) idle_timeout: Option<String>,
    pub(super) queue_timeout: Option<String>,
    pub(super) read_timeout: Option<String>,
    pub(super) max_connections: Option<i64>,
    pub(super) max_header_bytes: Option<i64>,
    pub(super) max_headers: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDatabase {
    pub(super) path: Option<String>,
    pub(super) busy_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTokens {
    pub(super) access_ttl: Option<String>,
    pub(super) refresh_ttl: Option<String>,
    pub(super) refresh_grace: Option<String>,
    pub(super) session_max_age: Option<String>,
    pub(super) partial_ttl: Option<String>,
    pub(super) algorithm: Option<String>,
    pub(super) audience: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCookies {
    pub(super) secure: Option<bool>,
    pub(super) domain: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSecurity {
    pub(super) secret_key: Option<String>,
    pub(super) allowed_origins: Option<Vec<String>>,
    pub(super) allowed_app_hosts: Option<Vec<String>>,
    pub(super) max_concurrent_hashes: Option<i64>,
    pub(super) hash_queue: Option<i64>,
    pub(super) login_max_failures: Option<i64>,
    pub(super) login_failure_window: Option<String>,
    pub(super) lockout: Option<String>,
    pub(super) account_max_failures: Option<i64>,
    pub(super) account_failure_window: Option<String>,
    pub(super) second_factor_max_failures: Option<i64>,
    pub(super) second_factor_window: Option<String>,
    pub(super) api_key_login_failures_per_minute: Option<i64>,
    pub(super) login_ip_per_minute: Option<i64>,
    pub(super) public_api_per_minute: Option<i64>,
    pub(super) email_per_hour: Option<i64>,
    pub(super) email_ip_per_hour: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPassword {
    pub(super) min_length: Option<i64>,
    pub(super) max_length: Option<i64>,
    pub(super) reject_common: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawArgon2 {
    pub(super) memory_kib: Option<i64>,
    pub(super) iterations: Option<i64>,
    pub(super) parallelism: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEmail {
    pub(super) transport: Option<String>,
    pub(super) from: Option<String>,
    pub(super) link_base_url: Option<String>,
    pub(super) smtp: RawSmtp,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSmtp {
    pub(super) host: Option<String>,
    pub(super) port: Option<i64>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) tls: Option<String>,
    pub(super) timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWebhooks {
    pub(super) timeout: Option<String>,
    pub(super) retry_schedule: Option<Vec<String>>,
    pub(super) allow_http: Option<bool>,
    pub(super) allow_private_addresses: Option<bool>,
    pub(super) retention: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub(super) format: Option<String>,
    pub(super) level: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAudit {
    pub(super) retention: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawUi {
    pub(super) templates_dir: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWorkos {
    pub(super) enabled: Option<bool>,
}
