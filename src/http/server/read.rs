//! Reading one request from a non-blocking socket: a state machine that keeps a partial
//! request (bytes, parsed head, body so far) in the connection between turns.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Instant;

use super::parse::{BodyKind, ChunkState, Head, decode_chunked, parse_head};
use super::write::{HttpError, write_blocking};
use super::{Conn, Ctx, ServerOptions};

/// Bytes asked from the socket per read while reading heads and chunked bodies.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes asked per read for a `Content-Length` body (read straight into the body buffer).
const BODY_READ_CHUNK: u64 = 64 * 1024;

pub(super) enum ReqState {
    /// Waiting for a complete head; `started` is when its first byte was seen.
    Head { started: Option<Instant> },
    /// Head parsed, body being read.
    Body {
        started: Instant,
        head: Head,
        body: Vec<u8>,
        framing: BodyFraming,
    },
}

impl ReqState {
    pub(super) fn fresh() -> Self {
        ReqState::Head { started: None }
    }
}

pub(super) enum BodyFraming {
    /// `Content-Length` body with this many bytes still to read.
    Length(u64),
    Chunked(ChunkState),
}

pub(super) enum ReadOutcome {
    Complete(Head, Vec<u8>),
    /// The socket ran dry before the request was complete.
    Pending,
    /// The peer closed (or reset) the connection.
    Eof,
    Fail(HttpError),
}

enum Step {
    Continue,
    BodyDone,
    Out(ReadOutcome),
}

/// The socket as the state machine sees it: a non-blocking TCP stream, or the in-memory one
/// of the fuzz targets (`super::fuzzing`).
pub(super) trait Source {
    /// A non-blocking read: `WouldBlock` when nothing is there yet, `Ok(0)` at end of stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes `100 Continue`.
    fn send_continue(&mut self) -> io::Result<()>;
}

impl Source for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }

    fn send_continue(&mut self) -> io::Result<()> {
        write_blocking(self, b"HTTP/1.1 100 Continue\r\n\r\n")
    }
}

/// Reads what the (non-blocking) socket has, up to `READ_CHUNK` bytes, onto the end of `v`.
/// Going through a stack buffer keeps `v` exactly as large as the pending bytes, so parked
/// connections do not keep read-sized buffers alive.
fn fill(stream: &mut impl Source, v: &mut Vec<u8>) -> io::Result<usize> {
    let mut scratch = [0u8; READ_CHUNK];
    let n = stream.read(&mut scratch)?;
    v.extend_from_slice(&scratch[..n]);
    Ok(n)
}

/// Reads up to `want` body bytes straight into `body`, whose capacity never exceeds `cap`.
fn fill_body(
    stream: &mut impl Source,
    body: &mut Vec<u8>,
    want: usize,
    cap: usize,
) -> io::Result<usize> {
    reserve_capped(body, want, cap);
    let old = body.len();
    body.resize(old + want, 0);
    let r = stream.read(&mut body[old..]);
    body.truncate(old + r.as_ref().map_or(0, |n| *n));
    r
}

/// Grows `v` for `additional` more bytes, doubling as usual but never past `cap` (the body
/// limit or the declared length), so memory follows the bytes actually received.
pub(super) fn reserve_capped(v: &mut Vec<u8>, additional: usize, cap: usize) {
    let needed = v.len().saturating_add(additional);
    if needed > v.capacity() {
        let target = v
            .capacity()
            .saturating_mul(2)
            .max(needed)
            .min(cap.max(needed));
        v.reserve_exact(target - v.len());
    }
}

fn read_step(r: io::Result<usize>) -> Option<ReadOutcome> {
    match r {
        Ok(0) => Some(ReadOutcome::Eof),
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(ReadOutcome::Pending),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
        Err(_) => Some(ReadOutcome::Eof),
    }
}

/// Advances the connection's request state machine with whatever the socket has to give.
pub(super) fn read_request(ctx: &Ctx, conn: &mut Conn) -> ReadOutcome {
    advance(&ctx.opts, &mut &conn.stream, &mut conn.buf, &mut conn.state)
}

/// The state machine itself: `buf` holds bytes read but not consumed, `state` the request so
/// far; both survive between calls.
pub(super) fn advance(
    opts: &ServerOptions,
    stream: &mut impl Source,
    buf: &mut Vec<u8>,
    state: &mut ReqState,
) -> ReadOutcome {
    loop {
        let now = Instant::now();
        let step = match &mut *state {
            ReqState::Head { started } => {
                if buf.is_empty() {
                    if let Some(t) = started
                        && now.duration_since(*t) >= opts.read_timeout
                    {
                        return ReadOutcome::Fail(HttpError::Timeout);
                    }
                    match read_step(fill(stream, buf)) {
                        Some(out) => Step::Out(out),
                        None => Step::Continue,
                    }
                } else {
                    let t0 = *started.get_or_insert(now);
                    match parse_head(buf, opts) {
                        Err(e) => return ReadOutcome::Fail(e),
                        Ok(Some((head, used))) => {
                            buf.drain(..used);
                            let framing = match head.body {
                                BodyKind::None => {
                                    *state = ReqState::fresh();
                                    return ReadOutcome::Complete(head, Vec::new());
                                }
                                BodyKind::Length(n) => BodyFraming::Length(n),
                                BodyKind::Chunked => BodyFraming::Chunked(ChunkState::Size),
                            };
                            if head.expect_continue
                                && buf.is_empty()
                                && stream.send_continue().is_err()
                            {
                                return ReadOutcome::Eof;
                            }
                            // Memory follows received bytes, not the declared length.
                            *state = ReqState::Body {
                                started: t0,
                                head,
                                body: Vec::new(),
                                framing,
                            };
                            Step::Continue
                        }
                        Ok(None) => {
                            if buf.len() >= opts.max_header_bytes {
                                return ReadOutcome::Fail(HttpError::HeadersTooLarge);
                            }
                            if now.duration_since(t0) >= opts.read_timeout {
                                return ReadOutcome::Fail(HttpError::Timeout);
                            }
                            match read_step(fill(stream, buf)) {
                                Some(out) => Step::Out(out),
                                None => Step::Continue,
                            }
                        }
                    }
                }
            }
            ReqState::Body {
                started,
                body,
                framing,
                ..
            } => {
                if now.duration_since(*started) >= opts.read_timeout {
                    return ReadOutcome::Fail(HttpError::Timeout);
                }
                match framing {
                    BodyFraming::Length(remaining) => {
                        if *remaining > 0 && !buf.is_empty() {
                            let take = usize::try_from(*remaining)
                                .unwrap_or(usize::MAX)
                                .min(buf.len());
                            body.extend_from_slice(&buf[..take]);
                            buf.drain(..take);
                            *remaining -= take as u64;
                        }
                        if *remaining == 0 {
                            Step::BodyDone
                        } else {
                            let want = (*remaining).min(BODY_READ_CHUNK) as usize;
                            let total = usize::try_from(*remaining)
                                .unwrap_or(usize::MAX)
                                .saturating_add(body.len());
                            let r = fill_body(stream, body, want, total);
                            if let Ok(n) = r {
                                *remaining -= n as u64;
                            }
                            match read_step(r) {
                                Some(out) => Step::Out(out),
                                None => Step::Continue,
                            }
                        }
                    }
                    BodyFraming::Chunked(chunk) => match decode_chunked(chunk, buf, body, opts) {
                        Err(e) => return ReadOutcome::Fail(e),
                        Ok(true) => Step::BodyDone,
                        Ok(false) => match read_step(fill(stream, buf)) {
                            Some(out) => Step::Out(out),
                            None => Step::Continue,
                        },
                    },
                }
            }
        };
        match step {
            Step::Continue => {}
            Step::Out(out) => return out,
            Step::BodyDone => {
                if let ReqState::Body { head, body, .. } =
                    std::mem::replace(state, ReqState::fresh())
                {
                    return ReadOutcome::Complete(head, body);
                }
            }
        }
    }
}
