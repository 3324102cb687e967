//! Log lines: text or JSON (config `log.format`), one per request plus start/stop and errors.
//! Callers pass only what may be logged: never a token, password, key or code.

use crate::clock::{SharedClock, rfc3339};
use crate::config::{LogFormat, LogLevel};
use serde_json::{Map, Value};
use std::io::Write;

pub struct Logger {
    format: LogFormat,
    level: LogLevel,
    clock: SharedClock,
}

impl Logger {
    pub fn new(format: LogFormat, level: LogLevel, clock: SharedClock) -> Logger {
        Logger {
            format,
            level,
            clock,
        }
    }

    pub fn enabled(&self, level: LogLevel) -> bool {
        level <= self.level
    }

    pub fn info(&self, msg: &str, fields: &[(&str, Value)]) {
        self.log(LogLevel::Info, msg, fields)
    }

    pub fn warn(&self, msg: &str, fields: &[(&str, Value)]) {
        self.log(LogLevel::Warn, msg, fields)
    }

    pub fn error(&self, msg: &str, fields: &[(&str, Value)]) {
        self.log(LogLevel::Error, msg, fields)
    }

    pub fn debug(&self, msg: &str, fields: &[(&str, Value)]) {
        self.log(LogLevel::Debug, msg, fields)
    }

    pub fn log(&self, level: LogLevel, msg: &str, fields: &[(&str, Value)]) {
        if !self.enabled(level) {
            return;
        }
        let ts = rfc3339(self.clock.now_ms());
        let lvl = match level {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        };
        let line = match self.format {
            LogFormat::Json => {
                let mut m = Map::new();
                m.insert("ts".into(), ts.into());
                m.insert("level".into(), lvl.into());
                m.insert("msg".into(), msg.into());
                for (k, v) in fields {
                    m.insert((*k).into(), v.clone());
                }
                Value::Object(m).to_string()
            }
            LogFormat::Text => {
                let mut s = format!("{ts} {:<5} {msg}", lvl.to_ascii_uppercase());
                for (k, v) in fields {
                    match v {
                        Value::Null => continue,
                        Value::String(t) if !t.contains([' ', '"', '=']) && !t.is_empty() => {
                            s.push_str(&format!(" {k}={t}"))
                        }
                        other => s.push_str(&format!(" {k}={other}")),
                    }
                }
                s
            }
        };
        let stderr = std::io::stderr();
        let mut lock = stderr.lock();
        let _ = writeln!(lock, "{line}");
    }
}
