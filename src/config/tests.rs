//! Unit tests for config loading: defaults, refusals by key name, overrides, redaction.

use super::schema::Kind;
use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
const DOCS: &str = include_str!("../../docs/configuration.md");

fn file() -> ConfigSource {
    ConfigSource::File(PathBuf::from("/etc/latchkey.toml"))
}

fn no_env() -> EnvOverrides {
    EnvOverrides::default()
}

/// Parses `text` as a file with a valid secret appended in its own `[security]` section
/// (unless the text has one), without touching the process environment.
fn parse(text: &str) -> Result<Config, ConfigError> {
    let text = if text.contains("[security]") {
        text.to_owned()
    } else {
        format!("{text}\n[security]\nsecret_key = \"{SECRET}\"\n")
    };
    Config::from_toml_str_with_env(&text, file(), &no_env())
}

fn refused(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

fn assert_names(e: &ConfigError, key: &str) {
    assert_eq!(e.key(), Some(key), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("/etc/latchkey.toml: {key}: ")),
        "{shown}"
    );
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn example_parses_as_is_and_matches_the_defaults() {
    let source = ConfigSource::File(PathBuf::from("config.example.toml"));
    let ex = Config::from_toml_str_with_env(EXAMPLE, source, &no_env()).expect("example");
    let def = parse("").expect("defaults");
    assert_eq!(format!("{:?}", ex.server), format!("{:?}", def.server));
    assert_eq!(format!("{:?}", ex.tokens), format!("{:?}", def.tokens));
    assert_eq!(format!("{:?}", ex.email), format!("{:?}", def.email));
    assert_eq!(format!("{:?}", ex.webhooks), format!("{:?}", def.webhooks));
    assert_eq!(format!("{:?}", ex.argon2), format!("{:?}", def.argon2));
    assert_eq!(
        ex.security.secret_key.as_ref().map(Secret::expose),
        Some(SECRET_PLACEHOLDER)
    );
    assert!(ex.secret_is_placeholder());
    assert!(!def.secret_is_placeholder());
}

#[test]
fn the_placeholder_secret_is_refused_by_name() {
    let source = ConfigSource::File(PathBuf::from("config.example.toml"));
    let ex = Config::from_toml_str_with_env(EXAMPLE, source.clone(), &no_env()).unwrap();
    let e = ex.refuse_placeholder_secret().unwrap_err();
    assert_eq!(e.key(), Some("security.secret_key"));
    assert_eq!(e.origin(), "config.example.toml");
    // Given through the environment, the placeholder is refused too; a real secret is not.
    let env = EnvOverrides {
        secret_key: Some(SECRET_PLACEHOLDER.into()),
        ..Default::default()
    };
    let c = Config::from_toml_str_with_env("", source.clone(), &env).unwrap();
    assert!(c.refuse_placeholder_secret().is_err());
    let env = EnvOverrides {
        secret_key: Some("z".repeat(40)),
        ..Default::default()
    };
    let c = Config::from_toml_str_with_env(EXAMPLE, source, &env).unwrap();
    assert!(c.refuse_placeholder_secret().is_ok());
    assert!(init_config().refuse_placeholder_secret().is_ok());
}

fn init_config() -> Config {
    Config::from_toml_str_with_env(&init_text(&"f".repeat(64)), file(), &no_env()).unwrap()
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = parse("").unwrap();
    assert!(!c.is_dev_default());
    assert_eq!(c.server.bind, "127.0.0.1:8080");
    assert_eq!(c.server.public_url, "http://localhost:8080");
    assert_eq!(c.server.threads, 8);
    assert_eq!(c.server.max_body_bytes, 1_048_576);
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(c.server.idle_timeout, secs(30));
    assert_eq!(c.server.read_timeout, secs(10));
    assert_eq!(c.server.max_connections, 1024);
    assert_eq!(c.server.max_header_bytes, 16_384);
    assert_eq!(c.server.max_headers, 100);
    assert_eq!(c.database.path, PathBuf::from("./latchkey.db"));
    assert_eq!(c.database.busy_timeout, secs(5));
    assert_eq!(c.tokens.access_ttl, secs(900));
    assert_eq!(c.tokens.refresh_ttl, secs(7 * 86_400));
    assert_eq!(c.tokens.refresh_grace, secs(10));
    assert_eq!(c.tokens.session_max_age, secs(30 * 86_400));
    assert_eq!(c.tokens.partial_ttl, secs(300));
    assert_eq!(c.tokens.algorithm, Algorithm::EdDSA);
    assert_eq!(c.tokens.audience, "latchkey");
    assert!(c.cookies.secure);
    assert_eq!(c.cookies.domain, None);
    assert!(c.security.allowed_origins.is_empty());
    assert!(c.security.max_concurrent_hashes >= 1);
    assert_eq!(c.security.hash_queue, 64);
    assert_eq!(c.security.login_max_failures, 5);
    assert_eq!(c.security.login_failure_window, secs(900));
    assert_eq!(c.security.lockout, secs(900));
    assert_eq!(c.security.login_ip_per_minute, 20);
    assert_eq!(c.security.public_api_per_minute, 600);
    assert_eq!(c.security.email_per_hour, 3);
    assert_eq!(c.security.email_ip_per_hour, 20);
    assert_eq!((c.password.min_length, c.password.max_length), (8, 128));
    assert!(c.password.reject_common);
    assert_eq!(
        (
            c.argon2.memory_kib,
            c.argon2.iterations,
            c.argon2.parallelism
        ),
        (19_456, 2, 1)
    );
    assert_eq!(c.email.transport, EmailTransport::Log);
    assert_eq!(c.email.from, "Latchkey <no-reply@localhost>");
    assert_eq!(c.email.link_base_url, None);
    assert_eq!(c.email_link_base(), "http://localhost:8080");
    assert_eq!(
        (c.email.smtp.host.as_str(), c.email.smtp.port),
        ("localhost", 587)
    );
    assert_eq!(c.email.smtp.username, None);
    assert!(c.email.smtp.password.is_none());
    assert_eq!(c.email.smtp.tls, SmtpTls::Starttls);
    assert_eq!(c.email.smtp.timeout, secs(10));
    assert_eq!(c.webhooks.timeout, secs(10));
    let hours = |h: u64| secs(h * 3600);
    assert_eq!(
        c.webhooks.retry_schedule,
        vec![
            secs(60),
            secs(300),
            secs(1800),
            hours(2),
            hours(6),
            hours(24)
        ]
    );
    assert!(!c.webhooks.allow_http && !c.webhooks.allow_private_addresses);
    assert_eq!(c.webhooks.retention, secs(30 * 86_400));
    assert_eq!(
        (c.log.format, c.log.level),
        (LogFormat::Text, LogLevel::Info)
    );
    assert_eq!(c.audit.retention, secs(365 * 86_400));
}

#[test]
fn dev_default_parses_without_a_secret() {
    let c = Config::from_toml_str_with_env(DEV_DEFAULT, ConfigSource::EmbeddedDefault, &no_env())
        .expect("dev default");
    assert!(c.is_dev_default());
    assert!(c.security.secret_key.is_none());
    assert_eq!(c.server.bind, "127.0.0.1:8080");
    assert_eq!(c.server.public_url, "http://localhost:8080");
    assert_eq!(c.database.path, PathBuf::from("./latchkey.db"));
    assert!(!c.cookies.secure);
    assert!(c.webhooks.allow_http);
    assert!(!c.webhooks.allow_private_addresses);
    assert_eq!(
        c.security.allowed_origins,
        [
            "http://localhost:8080",
            "http://localhost:3000",
            "http://localhost:5173"
        ]
    );
    assert_eq!(c.tokens.access_ttl, secs(900));
}

#[test]
fn dev_default_takes_the_secret_from_the_environment() {
    let env = EnvOverrides {
        secret_key: Some(SECRET.to_owned()),
        smtp_password: None,
    };
    let c =
        Config::from_toml_str_with_env(DEV_DEFAULT, ConfigSource::EmbeddedDefault, &env).unwrap();
    assert_eq!(
        c.security.secret_key.as_ref().map(Secret::expose),
        Some(SECRET)
    );
    let short = EnvOverrides {
        secret_key: Some("short".to_owned()),
        smtp_password: None,
    };
    let e = Config::from_toml_str_with_env(DEV_DEFAULT, ConfigSource::EmbeddedDefault, &short)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "embedded default: security.secret_key: must be at least 32 characters (from LATCHKEY_SECRET_KEY)"
    );
}

#[test]
fn unknown_keys_are_refused_by_full_name() {
    let e = refused("bnid = 1\n");
    assert_names(&e, "bnid");
    assert!(e.message().contains("unknown section"), "{e}");

    let e = refused("[server]\nbnid = \"127.0.0.1:1\"\n");
    assert_names(&e, "server.bnid");
    assert!(e.message().contains("known keys in [server]: bind,"), "{e}");

    assert_names(&refused("[email.smtp]\nhots = \"x\"\n"), "email.smtp.hots");
    assert_names(&refused("[email]\nsmtp.hots = \"x\"\n"), "email.smtp.hots");
    assert_names(&refused("[emial]\n"), "emial");
    assert_names(&refused("[email.smtp.extra]\n"), "email.smtp.extra");
    assert_names(&refused("[server]\nbind = { a = 1 }\n"), "server.bind");
}

#[test]
fn wrong_types_name_the_key() {
    let e = refused("[server]\nthreads = \"8\"\n");
    assert_names(&e, "server.threads");
    assert_eq!(e.message(), "expected an integer, found a string");
    assert_names(&refused("[cookies]\nsecure = \"yes\"\n"), "cookies.secure");
    assert_names(&refused("[tokens]\naudience = 5\n"), "tokens.audience");
    assert_names(&refused("server = 5\n"), "server");
    assert_names(&refused("[email]\nsmtp = \"x\"\n"), "email.smtp");
    assert_names(
        &refused("[server]\ntrusted_proxies = \"::1\"\n"),
        "server.trusted_proxies",
    );
    assert_names(
        &refused("[server]\ntrusted_proxies = [\"::1\", 2]\n"),
        "server.trusted_proxies[1]",
    );
    assert_names(
        &refused("[argon2]\niterations = 1.5\n"),
        "argon2.iterations",
    );
    assert_names(
        &refused("[tokens]\nalgorithm = \"HS256\"\n"),
        "tokens.algorithm",
    );
    assert_names(&refused("[log]\nlevel = \"INFO\"\n"), "log.level");
    assert_names(&refused("[email.smtp]\ntls = \"ssl\"\n"), "email.smtp.tls");
    assert_names(
        &refused("[email]\ntransport = \"sendmail\"\n"),
        "email.transport",
    );
}

#[test]
fn bad_durations_name_the_key() {
    for bad in [
        "\"10\"",
        "10",
        "\"1.5s\"",
        "\"-1s\"",
        "\"\"",
        "\"10 s\"",
        "\"1h30m\"",
        "\"5y\"",
    ] {
        let e = refused(&format!("[tokens]\naccess_ttl = {bad}\n"));
        assert_names(&e, "tokens.access_ttl");
    }
    let e = refused("[tokens]\naccess_ttl = \"0s\"\n");
    assert_eq!(e.message(), "must be at least 1s");
    assert_names(
        &refused("[tokens]\naccess_ttl = \"99999999d\"\n"),
        "tokens.access_ttl",
    );
    assert_names(
        &refused("[webhooks]\nretry_schedule = [\"1m\", \"5\"]\n"),
        "webhooks.retry_schedule[1]",
    );
    assert_names(
        &refused("[webhooks]\nretry_schedule = [\"1m\", 5]\n"),
        "webhooks.retry_schedule[1]",
    );
    assert_names(
        &refused("[webhooks]\nretry_schedule = []\n"),
        "webhooks.retry_schedule",
    );
    assert_names(
        &refused("[tokens]\nrefresh_grace = \"7d\"\n"),
        "tokens.refresh_grace",
    );
    let c = parse("[tokens]\nrefresh_grace = \"0s\"\naccess_ttl = \"1500ms\"\n").unwrap();
    assert_eq!(c.tokens.refresh_grace, Duration::ZERO);
    assert_eq!(c.tokens.access_ttl, Duration::from_millis(1500));
}

#[test]
fn parse_duration_accepts_only_digits_and_one_unit() {
    assert_eq!(parse_duration("900ms"), Some(Duration::from_millis(900)));
    assert_eq!(parse_duration("10s"), Some(secs(10)));
    assert_eq!(parse_duration("15m"), Some(secs(900)));
    assert_eq!(parse_duration("2h"), Some(secs(7200)));
    assert_eq!(parse_duration("7d"), Some(secs(604_800)));
    assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
    for bad in [
        "",
        "10",
        "-1s",
        "+1s",
        "1.5s",
        "s",
        " 1s",
        "1s ",
        "1S",
        "1 s",
        "1sec",
        "1h30m",
        "18446744073709551616s",
        "18446744073709551615d",
        "18446744073709551615s",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
    for d in ["900ms", "1500ms", "10s", "90s", "15m", "2h", "7d", "0s"] {
        assert_eq!(format_duration(parse_duration(d).unwrap()), d);
    }
}

#[test]
fn secret_key_rules() {
    let e = Config::from_toml_str_with_env(
        "[security]\nsecret_key = \"too-short\"\n",
        file(),
        &no_env(),
    )
    .unwrap_err();
    assert_names(&e, "security.secret_key");
    assert_eq!(e.message(), "must be at least 32 characters");
    assert!(
        !e.to_string().contains("too-short"),
        "the secret must not be echoed: {e}"
    );

    let e =
        Config::from_toml_str_with_env("[server]\nthreads = 2\n", file(), &no_env()).unwrap_err();
    assert_names(&e, "security.secret_key");
    assert_eq!(
        e.message(),
        "required; run `latchkey init` to generate one or set LATCHKEY_SECRET_KEY"
    );
    let e = Config::from_toml_str_with_env("", file(), &no_env()).unwrap_err();
    assert_names(&e, "security.secret_key");
}

#[test]
fn environment_overrides_the_file() {
    let env = EnvOverrides {
        secret_key: Some("e".repeat(40)),
        smtp_password: Some("smtp-from-env".to_owned()),
    };
    let text =
        format!("[security]\nsecret_key = \"{SECRET}\"\n[email.smtp]\npassword = \"from-file\"\n");
    let c = Config::from_toml_str_with_env(&text, file(), &env).unwrap();
    assert_eq!(
        c.security.secret_key.as_ref().unwrap().expose(),
        "e".repeat(40)
    );
    assert_eq!(
        c.email.smtp.password.as_ref().unwrap().expose(),
        "smtp-from-env"
    );

    // The environment alone satisfies the file's requirement for a secret.
    let c = Config::from_toml_str_with_env("", file(), &env).unwrap();
    assert!(c.security.secret_key.is_some());

    // Without overrides the file's values stand.
    let c = Config::from_toml_str_with_env(&text, file(), &no_env()).unwrap();
    assert_eq!(c.security.secret_key.as_ref().unwrap().expose(), SECRET);
    assert_eq!(
        c.email.smtp.password.as_ref().unwrap().expose(),
        "from-file"
    );

    let short = EnvOverrides {
        secret_key: Some("short".to_owned()),
        smtp_password: None,
    };
    let e = Config::from_toml_str_with_env(&text, file(), &short).unwrap_err();
    assert!(e.message().ends_with("(from LATCHKEY_SECRET_KEY)"), "{e}");
}

#[test]
fn debug_never_prints_secrets() {
    let text = format!(
        "[security]\nsecret_key = \"{SECRET}\"\n[email.smtp]\nusername = \"u\"\npassword = \"hunter2-smtp-password\"\n"
    );
    let c = Config::from_toml_str_with_env(&text, file(), &no_env()).unwrap();
    let shown = format!("{c:?} {c:#?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains("hunter2-smtp-password"), "{shown}");
    assert!(shown.contains("[redacted]"));
    let s = Secret::new("visible?");
    assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
    assert_eq!(s.expose(), "visible?");
    let env = EnvOverrides {
        secret_key: Some(SECRET.to_owned()),
        smtp_password: None,
    };
    assert!(!format!("{env:?}").contains(SECRET));
}

#[test]
fn syntax_errors_give_the_file_and_line_but_not_the_text() {
    let text = "[server]\nbind = \"127.0.0.1:8080\"\n[security]\nsecret_key = \"abcdefabcdefabcdefabcdefabcdefabcdef\n";
    let e = Config::from_toml_str_with_env(text, file(), &no_env()).unwrap_err();
    let shown = e.to_string();
    assert_eq!(e.key(), None);
    assert!(
        shown.starts_with("/etc/latchkey.toml: invalid TOML at line 4, column "),
        "{shown}"
    );
    assert!(!shown.contains("abcdefabcdef"), "{shown}");
    let e = refused("[server]\n[server]\n");
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn values_are_checked_and_normalised() {
    let c = parse(
        "[server]\npublic_url = \"https://auth.example.com/\"\ntrusted_proxies = [\"10.0.0.1\", \"::1\"]\n\
         [email]\nlink_base_url = \"https://app.example.com/\"\n",
    )
    .unwrap();
    assert_eq!(c.server.public_url, "https://auth.example.com");
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert_eq!(c.email_link_base(), "https://app.example.com");

    let text = "[security]\nsecret_key = \"0123456789abcdef0123456789abcdef\"\n\
                allowed_origins = [\"https://App.Example.com/\"]\n";
    let c = Config::from_toml_str_with_env(text, file(), &no_env()).unwrap();
    assert_eq!(c.security.allowed_origins, ["https://app.example.com"]);

    assert_names(&refused("[server]\nbind = \"localhost\"\n"), "server.bind");
    assert_names(
        &refused("[server]\npublic_url = \"auth.example.com\"\n"),
        "server.public_url",
    );
    assert_names(
        &refused("[server]\npublic_url = \"https://\"\n"),
        "server.public_url",
    );
    assert_names(&refused("[server]\nthreads = 0\n"), "server.threads");
    assert_names(&refused("[server]\nthreads = 1025\n"), "server.threads");
    assert_names(
        &refused("[server]\nmax_body_bytes = 100\n"),
        "server.max_body_bytes",
    );
    assert_names(
        &refused("[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n"),
        "server.trusted_proxies[0]",
    );
    assert_names(
        &refused("[password]\nmin_length = 0\n"),
        "password.min_length",
    );
    assert_names(
        &refused("[password]\nmin_length = 20\nmax_length = 10\n"),
        "password.min_length",
    );
    assert_names(
        &refused("[password]\nmax_length = 1025\n"),
        "password.max_length",
    );
    assert_names(
        &refused("[argon2]\nmemory_kib = 15\nparallelism = 2\n"),
        "argon2.memory_kib",
    );
    assert_names(&refused("[argon2]\niterations = 0\n"), "argon2.iterations");
    assert_names(
        &refused("[argon2]\nparallelism = 0\n"),
        "argon2.parallelism",
    );
    assert_names(&refused("[tokens]\naudience = \"\"\n"), "tokens.audience");
    assert_names(&refused("[email.smtp]\nport = 70000\n"), "email.smtp.port");
    assert_names(&refused("[email]\nfrom = \"nobody\"\n"), "email.from");
    assert_names(&refused("[cookies]\ndomain = \"a b\"\n"), "cookies.domain");
    assert_names(
        &refused(
            "[security]\nsecret_key = \"0123456789abcdef0123456789abcdef\"\nallowed_origins = [\"https://a.com/path\"]\n",
        ),
        "security.allowed_origins[0]",
    );
    assert_names(
        &refused(
            "[security]\nsecret_key = \"0123456789abcdef0123456789abcdef\"\nlogin_max_failures = -1\n",
        ),
        "security.login_max_failures",
    );

    let c = parse("[security]\nsecret_key = \"0123456789abcdef0123456789abcdef\"\nmax_concurrent_hashes = 3\n").unwrap();
    assert_eq!(c.security.max_concurrent_hashes, 3);
    let c = parse("[tokens]\nalgorithm = \"RS256\"\n[log]\nformat = \"json\"\nlevel = \"debug\"\n")
        .unwrap();
    assert_eq!(c.tokens.algorithm.as_str(), "RS256");
    assert_eq!(
        (c.log.format, c.log.level),
        (LogFormat::Json, LogLevel::Debug)
    );
}

#[test]
fn log_levels_order_by_verbosity() {
    assert!(LogLevel::Error < LogLevel::Warn);
    assert!(LogLevel::Warn < LogLevel::Info);
    assert!(LogLevel::Info < LogLevel::Debug);
}

#[test]
fn init_text_fills_in_the_secret() {
    assert_eq!(EXAMPLE.matches(SECRET_PLACEHOLDER).count(), 1);
    let secret = "f".repeat(64);
    let text = init_text(&secret);
    assert!(!text.contains(SECRET_PLACEHOLDER));
    let c = Config::from_toml_str_with_env(&text, file(), &no_env()).unwrap();
    assert_eq!(c.security.secret_key.as_ref().unwrap().expose(), secret);
    assert!(!c.secret_is_placeholder());
    // Quotes and backslashes survive as TOML escapes.
    let odd = format!("{}\"\\", "x".repeat(32));
    let c = Config::from_toml_str_with_env(&init_text(&odd), file(), &no_env()).unwrap();
    assert_eq!(c.security.secret_key.as_ref().unwrap().expose(), odd);
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.toml");
    std::fs::write(&path, init_text(&"a".repeat(40))).unwrap();
    let c = Config::load(Some(&path)).unwrap();
    assert_eq!(c.source, ConfigSource::File(path.clone()));
    assert!(!c.is_dev_default());

    std::fs::write(&path, "[server]\nbnid = 1\n").unwrap();
    let e = Config::load(Some(&path)).unwrap_err();
    assert_eq!(e.origin(), path.display().to_string());
    assert!(
        e.to_string()
            .starts_with(&format!("{}: server.bnid: unknown key", path.display()))
    );

    let missing = dir.path().join("nope.toml");
    let e = Config::load(Some(&missing)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read: ", missing.display())),
        "{e}"
    );
}

/// Every key is in the example (set, or commented out when it has no default) and in the docs.
#[test]
fn example_and_docs_cover_every_key() {
    fn leaves(schema: &[(&str, Kind)], prefix: &str, out: &mut Vec<(String, String)>) {
        for (name, kind) in schema {
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            match kind {
                Kind::Table(sub) => leaves(sub, &path, out),
                _ => out.push((prefix.to_owned(), name.to_string())),
            }
        }
    }
    let mut keys = Vec::new();
    leaves(SCHEMA, "", &mut keys);
    let table: toml::Table = EXAMPLE.parse().unwrap();
    for (section, name) in &keys {
        let mut t = &table;
        for part in section.split('.') {
            t = t[part].as_table().unwrap();
        }
        let commented = EXAMPLE.contains(&format!("\n# {name} = "));
        assert!(
            t.contains_key(name) || commented,
            "{section}.{name} missing from the example"
        );
        assert!(
            DOCS.contains(&format!("`{section}.{name}`")),
            "{section}.{name} missing from the docs"
        );
    }
    assert!(
        DOCS.contains(DEV_DEFAULT),
        "docs must quote DEV_DEFAULT verbatim"
    );
    assert!(DOCS.contains(ENV_SECRET_KEY) && DOCS.contains(ENV_SMTP_PASSWORD));
}
