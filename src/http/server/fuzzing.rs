//! Entry points for the fuzz targets in `fuzz/` (and their regression tests): the head parser,
//! the chunked decoder and the request state machine over an in-memory socket. Not an API;
//! hidden from the docs and free to change with the layer.
#![doc(hidden)]

use std::io;

use super::ServerOptions;
use super::parse::{self, BodyKind, ChunkState};
use super::read::{ReadOutcome, ReqState, Source, advance};

/// A parsed request head, as the layer hands it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub http10: bool,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// `None` (no body), `Some(Some(n))` (`Content-Length: n`), `Some(None)` (chunked).
    pub body: Option<Option<u64>>,
}

impl From<parse::Head> for Head {
    fn from(h: parse::Head) -> Self {
        Head {
            method: h.method,
            url: h.url,
            headers: h.headers,
            http10: h.http10,
            keep_alive: h.keep_alive,
            expect_continue: h.expect_continue,
            body: match h.body {
                BodyKind::None => None,
                BodyKind::Length(n) => Some(Some(n)),
                BodyKind::Chunked => Some(None),
            },
        }
    }
}

/// [`parse::parse_head`]: `Ok(None)` while incomplete, `Err(status)` for the layer's answer.
pub fn parse_head(buf: &[u8], opts: &ServerOptions) -> Result<Option<(Head, usize)>, u16> {
    match parse::parse_head(buf, opts) {
        Ok(Some((h, used))) => Ok(Some((h.into(), used))),
        Ok(None) => Ok(None),
        Err(e) => Err(e.status()),
    }
}

/// What the chunked decoder made of some input, fed in `segments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunked {
    /// `Ok(true)` once the last chunk and the trailers are read; `Err(status)` on refusal.
    pub result: Result<bool, u16>,
    pub body: Vec<u8>,
    /// What is left: the bytes after the chunked body once done (the next pipelined
    /// request), the undecoded tail while incomplete, nothing after a refusal.
    pub rest: Vec<u8>,
}

/// Feeds `segments` to the chunked decoder one after the other, as the socket would.
pub fn decode_chunked(segments: &[&[u8]], opts: &ServerOptions) -> Chunked {
    let mut state = ChunkState::Size;
    let mut buf = Vec::new();
    let mut body = Vec::new();
    let mut result = Ok(false);
    let mut segs = segments.iter();
    for seg in segs.by_ref() {
        buf.extend_from_slice(seg);
        result =
            parse::decode_chunked(&mut state, &mut buf, &mut body, opts).map_err(|e| e.status());
        if result != Ok(false) {
            break;
        }
    }
    match result {
        Ok(true) => segs.for_each(|s| buf.extend_from_slice(s)),
        Ok(false) => {}
        Err(_) => buf.clear(),
    }
    Chunked {
        result,
        body,
        rest: buf,
    }
}

/// One result of the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Request {
        head: Head,
        body: Vec<u8>,
    },
    /// The layer's own answer (400, 408, 413, 431), after which it closes.
    Refused(u16),
    /// The peer closed.
    Eof,
}

/// The in-memory socket: each segment arrives as one burst, with "would block" between them,
/// then end of stream.
struct Segments<'a> {
    segments: &'a [&'a [u8]],
    at: usize,
    offset: usize,
    /// `100 Continue` answers written.
    continues: usize,
}

impl Source for Segments<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(seg) = self.segments.get(self.at) else {
            return Ok(0);
        };
        if self.offset == seg.len() {
            self.at += 1;
            self.offset = 0;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(seg.len() - self.offset);
        buf[..n].copy_from_slice(&seg[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }

    fn send_continue(&mut self) -> io::Result<()> {
        self.continues += 1;
        Ok(())
    }
}

/// Runs one connection's request state machine (the code a worker runs) over `segments`
/// until the layer refuses or the stream ends; returns every outcome in order and how many
/// `100 Continue` answers were written.
pub fn read_connection(segments: &[&[u8]], opts: &ServerOptions) -> (Vec<Outcome>, usize) {
    let mut src = Segments {
        segments,
        at: 0,
        offset: 0,
        continues: 0,
    };
    let mut buf = Vec::new();
    let mut state = ReqState::fresh();
    let mut out = Vec::new();
    loop {
        match advance(opts, &mut src, &mut buf, &mut state) {
            ReadOutcome::Complete(head, body) => out.push(Outcome::Request {
                head: head.into(),
                body,
            }),
            ReadOutcome::Pending => {}
            ReadOutcome::Eof => {
                out.push(Outcome::Eof);
                break;
            }
            ReadOutcome::Fail(e) => {
                out.push(Outcome::Refused(e.status()));
                break;
            }
        }
    }
    (out, src.continues)
}
