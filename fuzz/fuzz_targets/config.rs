//! The config loader (`config.rs`, `config/`): any text is a validated config or an error that
//! names where, never a panic; a loaded config answers its questions and never prints its
//! secret.
#![no_main]

use latchkey::config::{self, Config, ConfigSource, EnvOverrides};
use latchkey_fuzz::seed_and_rest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (seed, rest) = seed_and_rest(data);
    let text = String::from_utf8_lossy(data);
    let env = if seed & 1 == 0 {
        EnvOverrides::default()
    } else {
        EnvOverrides {
            secret_key: Some("env-secret-0123456789abcdef0123456789abcdef".into()),
            smtp_password: Some("env-smtp-password".into()),
        }
    };
    let source = if seed & 2 == 0 {
        ConfigSource::File("/fuzz/latchkey.toml".into())
    } else {
        ConfigSource::EmbeddedDefault
    };
    match Config::from_toml_str_with_env(&text, source, &env) {
        Ok(c) => {
            let shown = format!("{c:?}");
            assert!(!shown.contains("env-secret-0123456789abcdef"));
            assert!(!shown.contains("env-smtp-password"));
            let host = String::from_utf8_lossy(rest);
            let _ = c.app_host_allowed(&host);
            let _ = c.email_link_base();
            let _ = c.refuse_placeholder_secret();
        }
        Err(e) => {
            let _ = (e.origin(), e.key(), e.to_string());
            assert!(!e.message().is_empty());
        }
    }
    let _ = config::parse_duration(&text);
});
