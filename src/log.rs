//! Log lines: text or JSON (config `log.format`), one per request plus start/stop and errors.
//! Callers pass only what may be logged: never a token, password, key or code.

use crate::clock::{Rfc3339, SharedClock, rfc3339};
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
        let mut line = format_line(self.format, self.clock.now_ms(), level, msg, fields);
        line.push('\n');
        // One write (stderr is unbuffered: `writeln!` wrote the line and its newline apart),
        // so concurrent lines never interleave and a request costs one system call.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// One log line, without its newline. Values come from requests (path, method, headers), so
/// no character that could end or rewrite a line survives: every control character (C0, DEL,
/// C1) and U+2028/U+2029 is written as a `\uXXXX` escape, in the message, the keys and the
/// values of both formats. In JSON that is an ordinary string escape (serde already escapes
/// C0 controls); in text a value holding one is written quoted, as JSON.
fn format_line(
    format: LogFormat,
    now_ms: i64,
    level: LogLevel,
    msg: &str,
    fields: &[(&str, Value)],
) -> String {
    let lvl = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
    };
    let line = match format {
        LogFormat::Json => {
            let mut m = Map::new();
            m.insert("ts".into(), rfc3339(now_ms).into());
            m.insert("level".into(), lvl.into());
            m.insert("msg".into(), msg.into());
            for (k, v) in fields {
                m.insert((*k).into(), v.clone());
            }
            Value::Object(m).to_string()
        }
        LogFormat::Text => {
            use std::fmt::Write as _;
            let mut s = String::with_capacity(160);
            let level = lvl.to_ascii_uppercase();
            // Writing to a String cannot fail.
            let _ = write!(s, "{} {level:<5} {msg}", Rfc3339(now_ms));
            for (k, v) in fields {
                let _ = match v {
                    Value::Null => continue,
                    Value::String(t) if is_bare(t) => write!(s, " {k}={t}"),
                    other => write!(s, " {k}={other}"),
                };
            }
            s
        }
    };
    escape_line_breakers(line)
}

/// A text-format value written as it is: non-empty, and nothing that would need quoting.
fn is_bare(t: &str) -> bool {
    !t.is_empty()
        && !t
            .chars()
            .any(|c| matches!(c, ' ' | '"' | '=' | '\\') || breaks_line(c))
}

/// Control characters (C0, DEL, C1: they end lines, move the cursor or recolour terminals)
/// and the Unicode line and paragraph separators.
fn breaks_line(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

fn escape_line_breakers(line: String) -> String {
    if !line.chars().any(breaks_line) {
        return line;
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        if breaks_line(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOSTILE: &str = "/x\r\nINFO  request path=/admin status=200\u{0b}\u{1b}[31m\u{7f}\u{85}\u{9b}\u{2028}\u{2029}\ty";

    fn line(format: LogFormat, msg: &str, fields: &[(&str, Value)]) -> String {
        format_line(format, 0, LogLevel::Info, msg, fields)
    }

    fn no_breakers(l: &str) {
        assert!(!l.chars().any(breaks_line), "{l:?}");
    }

    #[test]
    fn text_lines_escape_control_characters_everywhere() {
        for v in [
            HOSTILE,
            "/plain\n",
            "\r",
            "a\u{85}b",
            "del\u{7f}",
            "with space\n",
        ] {
            // In the message and the keys too (callers pass constants there, but still).
            no_breakers(&line(LogFormat::Text, v, &[(v, json!(1))]));
            let l = line(
                LogFormat::Text,
                "request",
                &[("path", json!(v)), ("list", json!([v]))],
            );
            no_breakers(&l);
            // A value holding a control character is quoted, and reads back as JSON.
            let quoted = l
                .strip_prefix("1970-01-01T00:00:00.000Z INFO  request path=")
                .unwrap()
                .rsplit_once(" list=")
                .unwrap()
                .0;
            assert!(quoted.starts_with('"'), "{l}");
            let back: String = serde_json::from_str(quoted).unwrap();
            assert_eq!(back, v);
        }
        // Ordinary values stay bare; the others quoted as before.
        assert_eq!(
            line(
                LogFormat::Text,
                "request",
                &[
                    ("path", json!("/api/v1/auth/me")),
                    ("ua", json!("curl 8")),
                    ("n", json!(3)),
                    ("none", Value::Null),
                    ("empty", json!("")),
                ]
            ),
            "1970-01-01T00:00:00.000Z INFO  request path=/api/v1/auth/me ua=\"curl 8\" n=3 empty=\"\""
        );
        // A backslash forces quoting, so `\u000a` typed by a client cannot pass for an escape.
        let l = line(LogFormat::Text, "m", &[("path", json!("/a\\u000ab"))]);
        assert!(l.ends_with(r#"path="/a\\u000ab""#), "{l}");
    }

    #[test]
    fn json_lines_escape_control_characters_and_still_parse() {
        let l = line(
            LogFormat::Json,
            HOSTILE,
            &[
                ("path", json!(HOSTILE)),
                ("nested", json!({ "k": [HOSTILE] })),
            ],
        );
        no_breakers(&l);
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["msg"], HOSTILE);
        assert_eq!(v["path"], HOSTILE);
        assert_eq!(v["nested"]["k"][0], HOSTILE);
        assert_eq!(v["level"], "info");
    }
}
