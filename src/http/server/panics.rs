//! Panics in a worker's turn: caught, answered and logged as one line (request id, message,
//! location) in place of the standard hook's report; the backtrace only when asked for.
//!
//! A process-wide panic hook (installed once, by [`serve`](super::serve)) records where a panic
//! happened while this thread runs code under [`catch`], and prints nothing; panics anywhere
//! else go to the hook that was installed before, unchanged. The backtrace follows the line
//! only when `LATCHKEY_PANIC_BACKTRACE=1` was set at start: not on `RUST_BACKTRACE`, which
//! is often set machine-wide, so a client that finds a panic cannot fill the log with stack
//! traces.

use std::any::Any;
use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::IpAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Once};

/// Set to `1` to log a handler panic's backtrace after its line (debugging only).
const BACKTRACE_ENV: &str = "LATCHKEY_PANIC_BACKTRACE";

use serde_json::json;

use crate::clock::SystemClock;
use crate::config::{LogFormat, LogLevel};
use crate::log::Logger;

/// Longest panic message logged (a message can quote request bytes).
const MAX_MESSAGE: usize = 512;

thread_local! {
    /// True while this thread runs code under [`catch`].
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// What the hook saw of the last panic under [`catch`].
    static SEEN: RefCell<Option<Seen>> = const { RefCell::new(None) };
}

struct Seen {
    location: String,
    backtrace: Option<String>,
}

/// A caught panic.
pub(super) struct Panic {
    pub(super) message: String,
    /// `file:line:column`, or empty if unknown.
    pub(super) location: String,
    /// Only when [`BACKTRACE_ENV`] asks for one.
    pub(super) backtrace: Option<String>,
}

/// Installs the hook, once per process.
pub(super) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let backtraces = std::env::var(BACKTRACE_ENV).is_ok_and(|v| v == "1");
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CATCHING.try_with(Cell::get).unwrap_or(false) {
                previous(info);
                return;
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let backtrace = backtraces.then(|| Backtrace::force_capture().to_string());
            let _ = SEEN.try_with(|s| {
                *s.borrow_mut() = Some(Seen {
                    location,
                    backtrace,
                })
            });
        }));
    });
}

/// Runs `f`, turning a panic into a [`Panic`] (silently: the caller logs it).
pub(super) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    let outer = CATCHING.with(|c| c.replace(true));
    SEEN.with(|s| s.borrow_mut().take());
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(outer));
    result.map_err(|payload| {
        let seen = SEEN.with(|s| s.borrow_mut().take());
        let (location, backtrace) =
            seen.map_or((String::new(), None), |s| (s.location, s.backtrace));
        let message = message_of(payload.as_ref());
        // Dropping a payload can itself panic; it is a value the panicking code chose.
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
        Panic {
            message,
            location,
            backtrace,
        }
    })
}

fn message_of(payload: &(dyn Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.as_str()
    } else {
        "(a panic payload that is not a string)"
    };
    let mut end = text.len().min(MAX_MESSAGE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// What the log line says about the request, if a request was read.
pub(super) struct RequestInfo<'a> {
    pub(super) request_id: &'a str,
    pub(super) method: &'a str,
    /// The raw request target; only its path is logged (a query can carry tokens).
    pub(super) url: &'a str,
}

/// One error line (the text log format, on stderr like the application's log), then the
/// backtrace if one was captured.
pub(super) fn log(panic: &Panic, request: Option<&RequestInfo>, peer: IpAddr) {
    let mut fields = Vec::with_capacity(6);
    let msg = match request {
        Some(r) => {
            fields.push(("request_id", json!(r.request_id)));
            fields.push(("method", json!(r.method)));
            fields.push(("path", json!(r.url.split('?').next().unwrap_or(""))));
            "request handler panicked"
        }
        None => "connection turn panicked",
    };
    fields.push(("ip", json!(peer.to_string())));
    fields.push(("panic", json!(panic.message)));
    fields.push(("at", json!(panic.location)));
    Logger::new(LogFormat::Text, LogLevel::Error, Arc::new(SystemClock)).error(msg, &fields);
    if let Some(bt) = &panic.backtrace {
        let _ = writeln!(std::io::stderr().lock(), "{bt}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_keeps_message_and_location_and_the_thread_goes_on() {
        install_hook();
        let p = catch(|| -> u8 { panic!("boom {}", 7) }).err().unwrap();
        assert_eq!(p.message, "boom 7");
        assert!(
            p.location.starts_with("src/http/server/panics.rs:"),
            "{}",
            p.location
        );
        let p = catch(|| std::panic::panic_any(42u32)).err().unwrap();
        assert!(p.message.contains("not a string"));
        assert_eq!(catch(|| 5).ok(), Some(5));
        // Long messages are cut on a character boundary.
        let p = catch(|| panic!("{}", "é".repeat(600))).err().unwrap();
        assert!(p.message.len() <= MAX_MESSAGE && p.message.chars().all(|c| c == 'é'));
    }
}
