//! Writing: responses (framing, managed and invalid headers, `Date`), the answers the layer
//! gives itself (its errors, 503 `overloaded`, 500), and the blocking-write helpers.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use super::parse::has_token;

/// Errors produced by the connection layer itself; all are answered with a JSON envelope and
/// `Connection: close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HttpError {
    BadRequest(&'static str),
    PayloadTooLarge,
    HeadersTooLarge,
    Timeout,
}

impl HttpError {
    pub(super) fn status(self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::PayloadTooLarge => 413,
            HttpError::HeadersTooLarge => 431,
            HttpError::Timeout => 408,
        }
    }

    fn code(self) -> &'static str {
        match self {
            HttpError::BadRequest(_) => "invalid_request",
            HttpError::PayloadTooLarge => "payload_too_large",
            HttpError::HeadersTooLarge => "request_header_fields_too_large",
            HttpError::Timeout => "request_timeout",
        }
    }

    fn message(self) -> &'static str {
        match self {
            HttpError::BadRequest(m) => m,
            HttpError::PayloadTooLarge => "Request body too large",
            HttpError::HeadersTooLarge => "Request header fields too large",
            HttpError::Timeout => "Request not received in time",
        }
    }

    pub(super) fn response_bytes(self) -> Vec<u8> {
        error_response_bytes(self.status(), self.code(), self.message())
    }
}

fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"status": "error", "code": code, "message": message}).to_string()
}

/// A complete `Connection: close` error response, ready to write.
fn error_response_bytes(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = error_body(code, message);
    format!(
        "HTTP/1.1 {status} {}\r\nDate: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Request-Id: {}\r\nConnection: close\r\n\r\n{body}",
        reason_phrase(status),
        http_date_now(),
        body.len(),
        layer_request_id()
    )
    .into_bytes()
}

pub(super) fn overloaded_bytes() -> Vec<u8> {
    error_response_bytes(503, "overloaded", "Too many open connections")
}

pub(super) fn overloaded_response(request_id: &str) -> rouille::Response {
    rouille::Response::from_data(
        "application/json",
        error_body("overloaded", "Server is busy; try again shortly"),
    )
    .with_status_code(503)
    .with_additional_header("Retry-After", "1")
    .with_additional_header("X-Request-Id", request_id.to_string())
}

/// A request id for answers the layer gives itself before a request was read.
fn layer_request_id() -> String {
    use crate::clock::Clock;
    crate::ids::new_id("req", crate::clock::SystemClock.now_ms())
}

/// The request id of a request just read: the client's `X-Request-Id` when it is sane (the
/// pipeline's own rule, `respond::request_id`), else a fresh id put in its place. The
/// pipeline then echoes it, so its log lines, the answer and this layer's panic line all name
/// the request the same way.
pub(super) fn assign_request_id(headers: &mut Vec<(String, String)>) -> String {
    use crate::clock::Clock;
    let is_id = |name: &str| name.eq_ignore_ascii_case("x-request-id");
    let incoming = headers
        .iter()
        .find(|(n, _)| is_id(n))
        .map(|(_, v)| v.as_str());
    let id = crate::http::respond::request_id(incoming, crate::clock::SystemClock.now_ms());
    if incoming != Some(id.as_str()) {
        headers.retain(|(n, _)| !is_id(n));
        headers.push(("X-Request-Id".to_string(), id.clone()));
    }
    id
}

/// The answer to a request whose handler panicked.
pub(super) fn internal_error_response(request_id: &str) -> rouille::Response {
    rouille::Response::from_data(
        "application/json",
        error_body("internal_error", "Internal server error"),
    )
    .with_status_code(500)
    .with_additional_header("X-Request-Id", request_id.to_string())
}

/// Writes `bytes` in blocking mode (bounded by the write timeout), then restores non-blocking.
pub(super) fn write_blocking(stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let mut s = stream;
    s.write_all(bytes)?;
    s.flush()?;
    stream.set_nonblocking(true)
}

/// A response's writes to a connection's socket, which stays non-blocking as long as the
/// kernel takes the bytes: an answer that fits the send buffer (nearly all do) costs its
/// `write` calls and nothing else. At the first `WouldBlock` the socket is switched to
/// blocking mode, where the write timeout set at admission bounds every stall, and
/// [`SocketWriter::finish`] switches it back for the poller. (Switching for every answer
/// was two `ioctl` calls per request.)
pub(super) struct SocketWriter<'a> {
    stream: &'a TcpStream,
    blocking: bool,
}

impl<'a> SocketWriter<'a> {
    pub(super) fn new(stream: &'a TcpStream) -> Self {
        SocketWriter {
            stream,
            blocking: false,
        }
    }

    /// Leaves the socket non-blocking again, as a parked or queued connection's must be.
    pub(super) fn finish(self) -> io::Result<()> {
        if self.blocking {
            self.stream.set_nonblocking(true)?;
        }
        Ok(())
    }
}

impl Write for SocketWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match (&*self.stream).write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.blocking => {
                    self.stream.set_nonblocking(false)?;
                    self.blocking = true;
                }
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A worker's response buffer, kept from one answer to the next (a fresh 16 KiB buffer per
/// answer was a large allocation on every request); it never grows past [`WRITE_BUFFER`].
/// Writes go to `out` whenever it is full and when the answer ends. An answer that fails
/// half-way (its body reader errs or panics) is not flushed: the connection is closed.
struct Buffered<'a, W: Write> {
    out: W,
    buf: &'a mut Vec<u8>,
}

/// How much of an answer is gathered before it is written out.
pub(super) const WRITE_BUFFER: usize = 16 * 1024;

impl<W: Write> Write for Buffered<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > WRITE_BUFFER {
            self.flush()?;
            if data.len() >= WRITE_BUFFER {
                return self.out.write(data);
            }
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let written = self.out.write_all(self.buf);
        // What was not written is not written again: the connection is closed on error.
        self.buf.clear();
        written?;
        self.out.flush()
    }
}

pub(super) enum Written {
    KeepAlive,
    Close,
    Upgrade(Box<dyn rouille::Upgrade + Send>),
}

/// Hop-by-hop and framing headers that this layer computes itself.
fn is_managed_header(name: &str) -> bool {
    [
        "connection",
        "content-length",
        "transfer-encoding",
        "trailer",
        "keep-alive",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn is_valid_header(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// Writes `response` to `out`, gathered in `buf` (a worker's, empty and reused).
pub(super) fn write_response(
    out: impl Write,
    buf: &mut Vec<u8>,
    response: rouille::Response,
    is_head: bool,
    http10: bool,
    mut close: bool,
) -> io::Result<Written> {
    let rouille::Response {
        status_code,
        headers,
        data,
        upgrade,
    } = response;
    close |= headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("connection") && has_token(v, "close"));
    let status = if (100..=999).contains(&status_code) {
        status_code
    } else {
        500
    };
    buf.clear();
    let mut w = Buffered { out, buf };
    write!(w, "HTTP/1.1 {status} {}\r\n", reason_phrase(status))?;
    let mut has_date = false;
    for (name, value) in &headers {
        if is_managed_header(name) || !is_valid_header(name, value) {
            continue;
        }
        has_date |= name.eq_ignore_ascii_case("date");
        write!(w, "{name}: {value}\r\n")?;
    }
    if !has_date {
        write!(w, "Date: {}\r\n", http_date_now())?;
    }
    if let Some(upgrade) = upgrade {
        w.write_all(b"Connection: Upgrade\r\n\r\n")?;
        w.flush()?;
        return Ok(Written::Upgrade(upgrade));
    }

    enum Framing {
        Empty,
        Length(u64),
        Chunked,
        UntilClose,
    }
    let (mut reader, size) = data.into_reader_and_size();
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    let framing = match size {
        _ if no_body => Framing::Empty,
        Some(n) => Framing::Length(n as u64),
        None if is_head => Framing::Empty,
        None if http10 => {
            close = true;
            Framing::UntilClose
        }
        None => Framing::Chunked,
    };
    match framing {
        Framing::Length(n) => write!(w, "Content-Length: {n}\r\n")?,
        Framing::Chunked => w.write_all(b"Transfer-Encoding: chunked\r\n")?,
        Framing::Empty | Framing::UntilClose => {}
    }
    if close {
        w.write_all(b"Connection: close\r\n\r\n")?;
    } else if http10 {
        w.write_all(b"Connection: keep-alive\r\n\r\n")?;
    } else {
        w.write_all(b"\r\n")?;
    }
    if !is_head {
        match framing {
            Framing::Empty => {}
            Framing::Length(n) => {
                let copied = io::copy(&mut (&mut reader).take(n), &mut w)?;
                if copied < n {
                    // The body was shorter than announced: the framing is broken, close.
                    w.flush()?;
                    return Ok(Written::Close);
                }
            }
            Framing::UntilClose => {
                io::copy(&mut reader, &mut w)?;
            }
            Framing::Chunked => {
                let mut chunk = vec![0u8; 8192];
                loop {
                    let n = match reader.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    write!(w, "{n:x}\r\n")?;
                    w.write_all(&chunk[..n])?;
                    w.write_all(b"\r\n")?;
                }
                w.write_all(b"0\r\n\r\n")?;
            }
        }
    }
    w.flush()?;
    Ok(if close {
        Written::Close
    } else {
        Written::KeepAlive
    })
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// The `Date` header value: the wall clock (read through the clock module, like all time) as
/// an IMF-fixdate.
fn http_date_now() -> String {
    use crate::clock::Clock;
    crate::clock::http_date(crate::clock::SystemClock.now_ms().max(0))
}
