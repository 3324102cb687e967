//! HTTP/1.1 connection layer: one poller thread parks idle connections, a bounded worker pool serves one request per turn, and handlers keep rouille's `Request`/`Response` API.
//!
//! # Why this exists
//!
//! rouille 3.6 serves through tiny_http 0.12, which we measured to (1) starve keep-alive
//! connections (a race in its task pool: under wrk with 16/64 keep-alive connections only 1-4 of
//! them were served for 10 s), (2) keep one thread per open connection (1,000 idle sockets →
//! 1,009 threads), (3) never time out idle connections and (4) bound neither headers nor bodies.
//! This module replaces only the connection layer; handlers are still
//! `Fn(&rouille::Request) -> rouille::Response`.
//!
//! # Design, and why
//!
//! * **One poller thread** (the `polling` crate: epoll/kqueue/IOCP) owns the listener and every
//!   connection that is *parked*: idle between keep-alive requests, half-way through a request
//!   whose next bytes have not arrived, or lingering after an error response. A parked connection
//!   costs a socket and a small struct, never a thread, so 2,000 idle sockets add zero threads.
//! * **A fixed pool of `threads` workers** is fed through one FIFO queue (`Mutex<VecDeque>` +
//!   `Condvar`). The poller pushes a connection at the back when it becomes readable; the next free
//!   worker pops from the front. Service order is arrival order, so no connection can be starved
//!   by a busy one (the tiny_http failure mode).
//! * **One request per turn.** A worker reads (non-blocking) until one request is complete, runs
//!   the handler, writes the response with one flush, and gives the connection back: to the
//!   poller (re-armed for readability, with an idle deadline) or, if pipelined bytes are already
//!   buffered, straight to the back of the queue. Leftover bytes always travel with the connection,
//!   so pipelining works without letting one client monopolise a worker.
//! * **Reads never block a worker.** If a request is incomplete when the socket runs dry, the
//!   partial state (buffer, parsed head, decoded body so far) stays in the connection and it is
//!   parked with the request deadline (`read_timeout` after the request's first byte). A slowloris
//!   client therefore holds no worker while it dribbles; the poller closes it (best-effort 408) when
//!   the deadline passes, and a worker that sees the deadline passed answers 408 itself.
//! * **Timeouts live in the poller**: every parked connection has one deadline kept in a
//!   `BTreeSet<(Instant, key)>`; the poller waits until the nearest deadline (at most 1 s) and
//!   closes what expired. Idle keep-alive and fresh connections get `idle_timeout`.
//! * **Limits are enforced before buffering**: the head may not exceed `max_header_bytes` or
//!   `max_headers` (431); a `Content-Length` above `max_body_bytes` is answered 413 before any
//!   body byte is read; chunked bodies are decoded incrementally and rejected (413) as soon as a
//!   chunk size would push the body past the limit, so memory never exceeds the limit.
//!   `max_connections` is checked by the acceptor: past it the new socket gets a 503 JSON answer
//!   written by the poller itself (no worker involved) and is closed.
//! * **Errors close gracefully**: after an error response the write side is shut down and the
//!   poller drains (discards) input for a short linger period, so the client reads the error
//!   instead of a TCP reset caused by unread request bytes.
//! * **Panics are contained**: the handler runs under `catch_unwind` (→ 500 JSON); the whole turn
//!   is also wrapped so that no bug or client input can kill a worker.
//! * **Graceful stop**: `ServerHandle::stop` stops the poller (closing the listener and every
//!   parked connection), then closes the queue; workers finish the requests they hold (and those
//!   already queued), answer with `Connection: close`, and exit; all threads are joined.
//!
//! `polling` is pinned to 2.8 because from 3.0 on `Poller::add` is an `unsafe fn`, and this crate
//! is `#![forbid(unsafe_code)]`. 2.8 offers the same epoll wrapper with a safe `add`.
//!
//! Not supported (documented trade-offs): TLS (terminate in a proxy), HTTP/2, request trailers
//! (read and discarded), transfer codings other than `chunked` (400). `Response::upgrade` is
//! honoured by handing the socket to the `Upgrade` object; it then no longer counts against
//! `max_connections`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use polling::{Event, Poller};

/// Tunables of the connection layer. `ServerOptions::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Worker pool size: the number of requests handled concurrently.
    pub threads: usize,
    /// Cap on open connections (parked, queued, being served or lingering). Past it new
    /// connections are answered 503 by the acceptor and closed.
    pub max_connections: usize,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// Max time for one request's head and body to arrive, counted from its first byte
    /// (also the stall limit for one blocking write of a response).
    pub read_timeout: Duration,
    /// Max size of the request line plus headers (431 past it).
    pub max_header_bytes: usize,
    /// Max number of header fields (431 past it).
    pub max_headers: usize,
    /// Max decoded request body size (413 past it).
    pub max_body_bytes: u64,
    /// Load shedding: a request whose connection waited longer than this in the queue for a
    /// free worker is answered 503 `overloaded` (with `Retry-After: 1`, keeping the
    /// connection) without running the handler. Zero disables shedding.
    pub queue_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        let cores = thread::available_parallelism().map_or(2, |n| n.get());
        ServerOptions {
            threads: (cores * 4).clamp(4, 64),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 1024 * 1024,
            queue_timeout: Duration::from_secs(2),
        }
    }
}

/// A request handler, shared by all workers.
pub type Handler = Arc<dyn Fn(&rouille::Request) -> rouille::Response + Send + Sync>;

/// A running server. Dropping it stops the server like [`ServerHandle::stop`].
pub struct ServerHandle {
    addr: SocketAddr,
    ctx: Arc<Ctx>,
    poller_thread: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graceful stop: stop accepting, close parked (idle) connections, let requests already
    /// being served (or queued) finish and write their responses, then join every thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.ctx.stopping.store(true, Ordering::SeqCst);
        let _ = self.ctx.poller.notify();
        if let Some(t) = self.poller_thread.take() {
            let _ = t.join();
        }
        self.ctx.queue.close();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts serving on an already-bound listener (so callers can bind `127.0.0.1:0`).
pub fn serve(
    listener: TcpListener,
    opts: ServerOptions,
    handler: Handler,
) -> io::Result<ServerHandle> {
    let invalid = |what: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            what.to_string(),
        ))
    };
    if opts.threads == 0 {
        return invalid("threads must be at least 1");
    }
    if opts.max_connections == 0 {
        return invalid("max_connections must be at least 1");
    }
    if opts.idle_timeout.is_zero() || opts.read_timeout.is_zero() {
        return invalid("timeouts must be non-zero");
    }
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let poller = Poller::new()?;
    poller.add(&listener, Event::readable(LISTENER_KEY))?;

    let ctx = Arc::new(Ctx {
        opts,
        handler,
        queue: Queue::default(),
        poller,
        stopping: AtomicBool::new(false),
        open: Arc::new(AtomicUsize::new(0)),
    });
    let (back_tx, back_rx) = mpsc::channel();
    // Built incrementally: if a spawn fails, dropping the handle stops what was started.
    let mut handle = ServerHandle {
        addr,
        ctx: Arc::clone(&ctx),
        poller_thread: None,
        workers: Vec::with_capacity(ctx.opts.threads),
    };
    for i in 0..ctx.opts.threads {
        let ctx = Arc::clone(&ctx);
        let back = back_tx.clone();
        let t = thread::Builder::new()
            .name(format!("http-worker-{i}"))
            .spawn(move || worker_loop(&ctx, &back))?;
        handle.workers.push(t);
    }
    drop(back_tx);
    let poller_loop = PollerLoop {
        ctx: Arc::clone(&ctx),
        listener: Some(listener),
        listener_paused_until: None,
        parked: HashMap::new(),
        deadlines: BTreeSet::new(),
        next_key: LISTENER_KEY,
        back_rx,
    };
    let t = thread::Builder::new()
        .name("http-poller".to_string())
        .spawn(move || poller_loop.run())?;
    handle.poller_thread = Some(t);
    Ok(handle)
}

const LISTENER_KEY: usize = 0;
/// Bytes asked from the socket per read while reading heads and chunked bodies.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes asked per read for a `Content-Length` body (read straight into the body buffer).
const BODY_READ_CHUNK: u64 = 64 * 1024;
/// Connections accepted per listener wake-up before other events get a turn.
const ACCEPT_BATCH: usize = 128;
/// Longest accepted chunk-size line (size + extensions).
const MAX_CHUNK_LINE: usize = 1024;
/// How long an errored connection is drained before it is closed (capped by `read_timeout`).
const LINGER: Duration = Duration::from_secs(2);
/// Back-off after an accept error such as EMFILE, so the poller does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Longest poller sleep (deadlines are also checked on every wake-up).
const MAX_POLL_WAIT: Duration = Duration::from_secs(1);

/// State shared by the poller, the workers and the handle.
struct Ctx {
    opts: ServerOptions,
    handler: Handler,
    queue: Queue,
    poller: Poller,
    stopping: AtomicBool,
    open: Arc<AtomicUsize>,
}

impl Ctx {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// FIFO of connections with a complete request or readable bytes, served in arrival order.
#[derive(Default)]
struct Queue {
    inner: Mutex<QueueInner>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueInner {
    items: VecDeque<Conn>,
    closed: bool,
}

impl Queue {
    fn push(&self, mut conn: Conn) {
        conn.queued_at = Instant::now();
        lock(&self.inner).items.push_back(conn);
        self.ready.notify_one();
    }

    /// Next connection, or `None` once the queue is closed and empty.
    fn pop(&self) -> Option<Conn> {
        let mut g = lock(&self.inner);
        loop {
            if let Some(c) = g.items.pop_front() {
                return Some(c);
            }
            if g.closed {
                return None;
            }
            g = self.ready.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close(&self) {
        lock(&self.inner).closed = true;
        self.ready.notify_all();
    }
}

/// Decrements the open-connection count when the connection is dropped.
struct ConnGuard(Arc<AtomicUsize>);

impl ConnGuard {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        ConnGuard(Arc::clone(open))
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// No request in progress.
    Idle,
    /// A request is partially read.
    Reading,
    /// An error response was sent; input is drained until the deadline, then closed.
    Lingering,
}

/// One client connection and everything that must survive between turns.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// Bytes read from the socket but not consumed yet (partial head, pipelined requests).
    buf: Vec<u8>,
    state: ReqState,
    phase: Phase,
    deadline: Instant,
    /// When the connection last entered the worker queue (for load shedding).
    queued_at: Instant,
    _guard: ConnGuard,
}

enum ReqState {
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
    fn fresh() -> Self {
        ReqState::Head { started: None }
    }
}

enum BodyFraming {
    /// `Content-Length` body with this many bytes still to read.
    Length(u64),
    Chunked(ChunkState),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading trailer lines; bytes seen so far.
    Trailer(usize),
}

#[derive(Debug)]
struct Head {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    http10: bool,
    keep_alive: bool,
    expect_continue: bool,
    body: BodyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// Errors produced by the connection layer itself; all are answered with a JSON envelope and
/// `Connection: close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HttpError {
    BadRequest(&'static str),
    PayloadTooLarge,
    HeadersTooLarge,
    Timeout,
}

impl HttpError {
    fn status(self) -> u16 {
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

    fn response_bytes(self) -> Vec<u8> {
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

fn overloaded_bytes() -> Vec<u8> {
    error_response_bytes(503, "overloaded", "Too many open connections")
}

fn overloaded_response() -> rouille::Response {
    rouille::Response::from_data(
        "application/json",
        error_body("overloaded", "Server is busy; try again shortly"),
    )
    .with_status_code(503)
    .with_additional_header("Retry-After", "1")
    .with_additional_header("X-Request-Id", layer_request_id())
}

/// A request id for answers the layer gives itself (the handler never saw the request).
fn layer_request_id() -> String {
    use crate::clock::Clock;
    crate::db::new_id("req", crate::clock::SystemClock.now_ms())
}

fn internal_error_response() -> rouille::Response {
    rouille::Response::from_data(
        "application/json",
        error_body("internal_error", "Internal server error"),
    )
    .with_status_code(500)
}

// ---------------------------------------------------------------------------------------------
// Poller thread
// ---------------------------------------------------------------------------------------------

struct PollerLoop {
    ctx: Arc<Ctx>,
    listener: Option<TcpListener>,
    listener_paused_until: Option<Instant>,
    parked: HashMap<usize, Conn>,
    deadlines: BTreeSet<(Instant, usize)>,
    next_key: usize,
    back_rx: Receiver<Conn>,
}

impl PollerLoop {
    fn run(mut self) {
        let mut events = Vec::new();
        while !self.ctx.stopping() {
            let timeout = self.next_timeout(Instant::now());
            events.clear();
            if let Err(e) = self.ctx.poller.wait(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                // Should not happen; avoid a hot loop if it does.
                thread::sleep(Duration::from_millis(10));
            }
            if self.ctx.stopping() {
                break;
            }
            for ev in &events {
                if ev.key == LISTENER_KEY {
                    self.accept();
                } else {
                    self.on_readable(ev.key);
                }
            }
            while let Ok(conn) = self.back_rx.try_recv() {
                self.park(conn);
            }
            let now = Instant::now();
            self.expire(now);
            if self.listener_paused_until.is_some_and(|t| t <= now) {
                self.listener_paused_until = None;
                self.rearm_listener();
            }
        }
        self.close_all();
    }

    fn next_timeout(&self, now: Instant) -> Duration {
        let mut next = now + MAX_POLL_WAIT;
        if let Some(&(t, _)) = self.deadlines.first() {
            next = next.min(t);
        }
        if let Some(t) = self.listener_paused_until {
            next = next.min(t);
        }
        next.saturating_duration_since(now)
    }

    fn rearm_listener(&self) {
        if let Some(l) = &self.listener {
            let _ = self.ctx.poller.modify(l, Event::readable(LISTENER_KEY));
        }
    }

    fn accept(&mut self) {
        let mut accepted = Vec::new();
        let mut paused = false;
        if let Some(listener) = &self.listener {
            for _ in 0..ACCEPT_BATCH {
                match listener.accept() {
                    Ok(pair) => accepted.push(pair),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::Interrupted
                                | io::ErrorKind::ConnectionAborted
                                | io::ErrorKind::ConnectionReset
                        ) => {}
                    Err(_) => {
                        // EMFILE/ENFILE/ENOBUFS...: back off instead of spinning.
                        paused = true;
                        break;
                    }
                }
            }
        }
        for (stream, peer) in accepted {
            self.admit(stream, peer);
        }
        if paused {
            self.listener_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
        } else {
            self.rearm_listener();
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        if self.ctx.open.load(Ordering::SeqCst) >= self.ctx.opts.max_connections {
            reject_overloaded(stream);
            return;
        }
        let _ = stream.set_nodelay(true);
        // Bounds each blocking write of a response (stall limit), set once per connection.
        if stream
            .set_write_timeout(Some(self.ctx.opts.read_timeout))
            .is_err()
        {
            return;
        }
        let conn = Conn {
            stream,
            peer,
            buf: Vec::new(),
            state: ReqState::fresh(),
            phase: Phase::Idle,
            deadline: Instant::now() + self.ctx.opts.idle_timeout,
            queued_at: Instant::now(),
            _guard: ConnGuard::new(&self.ctx.open),
        };
        self.park(conn);
    }

    fn alloc_key(&mut self) -> usize {
        loop {
            self.next_key = self.next_key.wrapping_add(1);
            let k = self.next_key;
            if k != LISTENER_KEY && k != usize::MAX && !self.parked.contains_key(&k) {
                return k;
            }
        }
    }

    /// Registers `conn` for readability with its deadline. Dropping it on failure closes it.
    fn park(&mut self, conn: Conn) {
        if self.ctx.stopping() {
            return;
        }
        let key = self.alloc_key();
        if self
            .ctx
            .poller
            .add(&conn.stream, Event::readable(key))
            .is_err()
        {
            return;
        }
        self.deadlines.insert((conn.deadline, key));
        self.parked.insert(key, conn);
    }

    fn unpark(&mut self, key: usize) -> Option<Conn> {
        let conn = self.parked.remove(&key)?;
        self.deadlines.remove(&(conn.deadline, key));
        let _ = self.ctx.poller.delete(&conn.stream);
        Some(conn)
    }

    fn on_readable(&mut self, key: usize) {
        let Some(conn) = self.unpark(key) else {
            return;
        };
        if conn.phase == Phase::Lingering {
            self.drain(conn);
        } else {
            self.ctx.queue.push(conn);
        }
    }

    /// Discards input of a lingering connection; closes it at EOF or error.
    fn drain(&mut self, conn: Conn) {
        let mut scratch = [0u8; 8192];
        for _ in 0..32 {
            match (&conn.stream).read(&mut scratch) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        self.park(conn);
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(t, key)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(conn) = self.parked.remove(&key) else {
                continue;
            };
            let _ = self.ctx.poller.delete(&conn.stream);
            if conn.phase == Phase::Reading {
                // Best effort: the socket is non-blocking and the answer is small.
                let _ = (&conn.stream).write(&HttpError::Timeout.response_bytes());
                let _ = conn.stream.shutdown(Shutdown::Write);
            }
        }
    }

    fn close_all(&mut self) {
        if let Some(l) = self.listener.take() {
            let _ = self.ctx.poller.delete(&l);
        }
        for (_, conn) in self.parked.drain() {
            let _ = self.ctx.poller.delete(&conn.stream);
        }
        self.deadlines.clear();
        while self.back_rx.try_recv().is_ok() {}
    }
}

/// Answers 503 from the acceptor without involving a worker, then closes.
fn reject_overloaded(stream: TcpStream) {
    // Consume whatever request bytes already arrived so that closing does not reset the
    // connection before the client can read the answer.
    let mut scratch = [0u8; 4096];
    let _ = (&stream).read(&mut scratch);
    let _ = (&stream).write(&overloaded_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

/// What to do with a connection after a turn.
enum Next {
    /// Back to the poller (idle or waiting for more request bytes).
    Park,
    /// Pipelined bytes are buffered: back of the queue, no need to wait for readability.
    Requeue,
    /// Error response sent and write side shut: drain input for a while, then close.
    Linger,
    Close,
    Upgrade(Box<dyn rouille::Upgrade + Send>),
}

fn worker_loop(ctx: &Ctx, back: &Sender<Conn>) {
    while let Some(conn) = ctx.queue.pop() {
        // A panic anywhere in a turn drops that connection, never the worker.
        let _ = catch_unwind(AssertUnwindSafe(|| run_turn(ctx, conn, back)));
    }
}

fn run_turn(ctx: &Ctx, mut conn: Conn, back: &Sender<Conn>) {
    let next = serve_one(ctx, &mut conn);
    let now = Instant::now();
    match next {
        Next::Park => {
            let (phase, deadline) = match &conn.state {
                ReqState::Head { started: None } => (Phase::Idle, now + ctx.opts.idle_timeout),
                ReqState::Head { started: Some(t) } | ReqState::Body { started: t, .. } => {
                    (Phase::Reading, *t + ctx.opts.read_timeout)
                }
            };
            conn.phase = phase;
            conn.deadline = deadline;
            if conn.buf.is_empty() {
                // Release the last request's buffer: idle connections should cost ~nothing.
                conn.buf = Vec::new();
            }
            give_back(ctx, back, conn);
        }
        Next::Requeue => ctx.queue.push(conn),
        Next::Linger => {
            conn.phase = Phase::Lingering;
            conn.deadline = now + LINGER.min(ctx.opts.read_timeout);
            give_back(ctx, back, conn);
        }
        Next::Close => {}
        Next::Upgrade(mut upgrade) => {
            let Conn { stream, .. } = conn;
            let _ = stream.set_read_timeout(None);
            let _ = stream.set_write_timeout(None);
            upgrade.build(Box::new(stream));
        }
    }
}

fn give_back(ctx: &Ctx, back: &Sender<Conn>, conn: Conn) {
    if ctx.stopping() {
        return;
    }
    if back.send(conn).is_ok() {
        let _ = ctx.poller.notify();
    }
}

/// Serves at most one request on `conn`.
fn serve_one(ctx: &Ctx, conn: &mut Conn) -> Next {
    if conn.stream.set_nonblocking(true).is_err() {
        return Next::Close;
    }
    let (head, body) = match read_request(ctx, conn) {
        ReadOutcome::Complete(head, body) => (head, body),
        ReadOutcome::Pending if ctx.stopping() => return Next::Close,
        ReadOutcome::Pending => return Next::Park,
        ReadOutcome::Eof => return Next::Close,
        ReadOutcome::Fail(err) => {
            return if write_blocking(&conn.stream, &err.response_bytes()).is_ok() {
                let _ = conn.stream.shutdown(Shutdown::Write);
                Next::Linger
            } else {
                Next::Close
            };
        }
    };
    let Head {
        method,
        url,
        headers,
        http10,
        keep_alive,
        ..
    } = head;
    let is_head = method == "HEAD";
    let q = ctx.opts.queue_timeout;
    let response = if !q.is_zero() && conn.queued_at.elapsed() > q {
        // Waited too long for a worker: answer at once rather than add to the backlog.
        overloaded_response()
    } else {
        let request = rouille::Request::fake_http_from(conn.peer, method, url, headers, body);
        let handler = &ctx.handler;
        catch_unwind(AssertUnwindSafe(|| handler(&request)))
            .unwrap_or_else(|_| internal_error_response())
    };

    let close = !keep_alive || ctx.stopping();
    if prepare_blocking_write(&conn.stream).is_err() {
        return Next::Close;
    }
    let written = catch_unwind(AssertUnwindSafe(|| {
        write_response(&conn.stream, response, is_head, http10, close)
    }));
    match written {
        Ok(Ok(Written::KeepAlive)) if !ctx.stopping() => {
            if conn.buf.is_empty() {
                Next::Park
            } else {
                Next::Requeue
            }
        }
        Ok(Ok(Written::KeepAlive | Written::Close)) => {
            let _ = conn.stream.shutdown(Shutdown::Write);
            Next::Linger
        }
        Ok(Ok(Written::Upgrade(u))) => Next::Upgrade(u),
        Ok(Err(_)) | Err(_) => Next::Close,
    }
}

/// Switches to blocking mode for writing; the write timeout was set at admission.
fn prepare_blocking_write(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)
}

/// Writes `bytes` in blocking mode (bounded by the write timeout), then restores non-blocking.
fn write_blocking(stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    prepare_blocking_write(stream)?;
    let mut s = stream;
    s.write_all(bytes)?;
    s.flush()?;
    stream.set_nonblocking(true)
}

enum ReadOutcome {
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

/// Reads what the (non-blocking) socket has, up to `READ_CHUNK` bytes, onto the end of `v`.
/// Going through a stack buffer keeps `v` exactly as large as the pending bytes, so parked
/// connections do not keep read-sized buffers alive.
fn fill(mut stream: &TcpStream, v: &mut Vec<u8>) -> io::Result<usize> {
    let mut scratch = [0u8; READ_CHUNK];
    let n = stream.read(&mut scratch)?;
    v.extend_from_slice(&scratch[..n]);
    Ok(n)
}

/// Reads up to `want` body bytes straight into `body`, whose capacity never exceeds `cap`.
fn fill_body(
    mut stream: &TcpStream,
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
fn reserve_capped(v: &mut Vec<u8>, additional: usize, cap: usize) {
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
fn read_request(ctx: &Ctx, conn: &mut Conn) -> ReadOutcome {
    let opts = &ctx.opts;
    loop {
        let now = Instant::now();
        let step = match &mut conn.state {
            ReqState::Head { started } => {
                if conn.buf.is_empty() {
                    if let Some(t) = started
                        && now.duration_since(*t) >= opts.read_timeout
                    {
                        return ReadOutcome::Fail(HttpError::Timeout);
                    }
                    match read_step(fill(&conn.stream, &mut conn.buf)) {
                        Some(out) => Step::Out(out),
                        None => Step::Continue,
                    }
                } else {
                    let t0 = *started.get_or_insert(now);
                    match parse_head(&conn.buf, opts) {
                        Err(e) => return ReadOutcome::Fail(e),
                        Ok(Some((head, used))) => {
                            conn.buf.drain(..used);
                            let framing = match head.body {
                                BodyKind::None => {
                                    conn.state = ReqState::fresh();
                                    return ReadOutcome::Complete(head, Vec::new());
                                }
                                BodyKind::Length(n) => BodyFraming::Length(n),
                                BodyKind::Chunked => BodyFraming::Chunked(ChunkState::Size),
                            };
                            if head.expect_continue
                                && conn.buf.is_empty()
                                && write_blocking(&conn.stream, b"HTTP/1.1 100 Continue\r\n\r\n")
                                    .is_err()
                            {
                                return ReadOutcome::Eof;
                            }
                            // Memory follows received bytes, not the declared length.
                            conn.state = ReqState::Body {
                                started: t0,
                                head,
                                body: Vec::new(),
                                framing,
                            };
                            Step::Continue
                        }
                        Ok(None) => {
                            if conn.buf.len() >= opts.max_header_bytes {
                                return ReadOutcome::Fail(HttpError::HeadersTooLarge);
                            }
                            if now.duration_since(t0) >= opts.read_timeout {
                                return ReadOutcome::Fail(HttpError::Timeout);
                            }
                            match read_step(fill(&conn.stream, &mut conn.buf)) {
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
                        if *remaining > 0 && !conn.buf.is_empty() {
                            let take = usize::try_from(*remaining)
                                .unwrap_or(usize::MAX)
                                .min(conn.buf.len());
                            body.extend_from_slice(&conn.buf[..take]);
                            conn.buf.drain(..take);
                            *remaining -= take as u64;
                        }
                        if *remaining == 0 {
                            Step::BodyDone
                        } else {
                            let want = (*remaining).min(BODY_READ_CHUNK) as usize;
                            let total = usize::try_from(*remaining)
                                .unwrap_or(usize::MAX)
                                .saturating_add(body.len());
                            let r = fill_body(&conn.stream, body, want, total);
                            if let Ok(n) = r {
                                *remaining -= n as u64;
                            }
                            match read_step(r) {
                                Some(out) => Step::Out(out),
                                None => Step::Continue,
                            }
                        }
                    }
                    BodyFraming::Chunked(state) => {
                        match decode_chunked(state, &mut conn.buf, body, opts) {
                            Err(e) => return ReadOutcome::Fail(e),
                            Ok(true) => Step::BodyDone,
                            Ok(false) => match read_step(fill(&conn.stream, &mut conn.buf)) {
                                Some(out) => Step::Out(out),
                                None => Step::Continue,
                            },
                        }
                    }
                }
            }
        };
        match step {
            Step::Continue => {}
            Step::Out(out) => return out,
            Step::BodyDone => {
                if let ReqState::Body { head, body, .. } =
                    std::mem::replace(&mut conn.state, ReqState::fresh())
                {
                    return ReadOutcome::Complete(head, body);
                }
            }
        }
    }
}

/// Parses a request head from the start of `buf`: `Ok(None)` if incomplete.
fn parse_head(buf: &[u8], opts: &ServerOptions) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; opts.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(used)) => {
            if used > opts.max_header_bytes {
                return Err(HttpError::HeadersTooLarge);
            }
            build_head(&req, opts).map(|h| Some((h, used)))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadersTooLarge),
        Err(_) => Err(HttpError::BadRequest("Malformed HTTP request")),
    }
}

fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn parse_content_length(v: &str) -> Result<u64, HttpError> {
    let bad = HttpError::BadRequest("Invalid Content-Length");
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    v.parse().map_err(|_| bad)
}

fn build_head(req: &httparse::Request, opts: &ServerOptions) -> Result<Head, HttpError> {
    let malformed = HttpError::BadRequest("Malformed HTTP request");
    let method = req.method.ok_or(malformed)?.to_string();
    let url = req.path.ok_or(malformed)?.to_string();
    let http10 = match req.version {
        Some(0) => true,
        Some(1) => false,
        _ => return Err(malformed),
    };
    let mut content_length: Option<u64> = None;
    let mut te_seen = false;
    let mut chunked = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(&value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(HttpError::BadRequest("Conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te_seen = true;
            for coding in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if chunked || !coding.eq_ignore_ascii_case("chunked") {
                    return Err(HttpError::BadRequest("Unsupported Transfer-Encoding"));
                }
                chunked = true;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            conn_close |= has_token(&value, "close");
            conn_keep_alive |= has_token(&value, "keep-alive");
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue |= value.eq_ignore_ascii_case("100-continue");
        }
        headers.push((h.name.to_string(), value));
    }
    if te_seen && content_length.is_some() {
        return Err(HttpError::BadRequest(
            "Both Content-Length and Transfer-Encoding present",
        ));
    }
    if te_seen && !chunked {
        return Err(HttpError::BadRequest("Unsupported Transfer-Encoding"));
    }
    let body = if chunked {
        BodyKind::Chunked
    } else {
        match content_length {
            None | Some(0) => BodyKind::None,
            Some(n) if n > opts.max_body_bytes => return Err(HttpError::PayloadTooLarge),
            Some(n) => BodyKind::Length(n),
        }
    };
    let keep_alive = if http10 {
        conn_keep_alive && !conn_close
    } else {
        !conn_close
    };
    Ok(Head {
        method,
        url,
        headers,
        http10,
        keep_alive,
        expect_continue: expect_continue && !http10 && body != BodyKind::None,
        body,
    })
}

fn find_lf(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses a chunk-size line (`1a;ext=1`). `None` if malformed.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = strip_cr(line);
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = &line[digits..];
    let rest_trimmed = rest.trim_ascii_start();
    if !rest_trimmed.is_empty() && rest_trimmed[0] != b';' {
        return None;
    }
    let hex = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

/// Decodes as much chunked data from `buf` as possible into `body`, consuming it from `buf`.
/// `Ok(true)` once the last chunk and trailers are read. Never lets `body` exceed the limit.
fn decode_chunked(
    state: &mut ChunkState,
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
    opts: &ServerOptions,
) -> Result<bool, HttpError> {
    let bad = HttpError::BadRequest("Malformed chunked body");
    let mut pos = 0;
    let result = loop {
        let rest = &buf[pos..];
        match *state {
            ChunkState::Size => {
                let Some(i) = find_lf(rest) else {
                    if rest.len() > MAX_CHUNK_LINE {
                        break Err(bad);
                    }
                    break Ok(false);
                };
                if i > MAX_CHUNK_LINE {
                    break Err(bad);
                }
                let Some(size) = parse_chunk_size(&rest[..i]) else {
                    break Err(bad);
                };
                pos += i + 1;
                if size == 0 {
                    *state = ChunkState::Trailer(0);
                } else if size > opts.max_body_bytes.saturating_sub(body.len() as u64) {
                    break Err(HttpError::PayloadTooLarge);
                } else {
                    *state = ChunkState::Data(size);
                }
            }
            ChunkState::Data(left) => {
                if rest.is_empty() {
                    break Ok(false);
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                let cap = usize::try_from(opts.max_body_bytes).unwrap_or(usize::MAX);
                reserve_capped(body, take, cap);
                body.extend_from_slice(&rest[..take]);
                pos += take;
                let left = left - take as u64;
                *state = if left == 0 {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(left)
                };
            }
            ChunkState::DataEnd => match rest {
                [] | [b'\r'] => break Ok(false),
                [b'\n', ..] => {
                    pos += 1;
                    *state = ChunkState::Size;
                }
                [b'\r', b'\n', ..] => {
                    pos += 2;
                    *state = ChunkState::Size;
                }
                _ => break Err(bad),
            },
            ChunkState::Trailer(seen) => {
                let Some(i) = find_lf(rest) else {
                    if seen + rest.len() > opts.max_header_bytes {
                        break Err(HttpError::HeadersTooLarge);
                    }
                    break Ok(false);
                };
                let line = strip_cr(&rest[..i]);
                pos += i + 1;
                if line.is_empty() {
                    break Ok(true);
                }
                let seen = seen + i + 1;
                if seen > opts.max_header_bytes {
                    break Err(HttpError::HeadersTooLarge);
                }
                *state = ChunkState::Trailer(seen);
            }
        }
    };
    buf.drain(..pos);
    result
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

enum Written {
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

fn write_response(
    stream: &TcpStream,
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
    let mut w = BufWriter::with_capacity(16 * 1024, stream);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(max_body: u64) -> ServerOptions {
        ServerOptions {
            max_body_bytes: max_body,
            ..ServerOptions::default()
        }
    }

    #[test]
    fn chunked_decoder_handles_any_split() {
        let input =
            b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..input.len() {
            let mut state = ChunkState::Size;
            let mut buf = input[..split].to_vec();
            let mut body = Vec::new();
            let mut done = decode_chunked(&mut state, &mut buf, &mut body, &opts(1024)).unwrap();
            buf.extend_from_slice(&input[split..]);
            if !done {
                done = decode_chunked(&mut state, &mut buf, &mut body, &opts(1024)).unwrap();
            }
            assert!(done, "split {split}");
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(buf, b"NEXT");
        }
    }

    #[test]
    fn chunked_decoder_enforces_limits_and_syntax() {
        let mut state = ChunkState::Size;
        let mut body = Vec::new();
        let mut buf = b"10\r\n".to_vec();
        assert_eq!(
            decode_chunked(&mut state, &mut buf, &mut body, &opts(8)),
            Err(HttpError::PayloadTooLarge)
        );
        for bad in [&b"zz\r\n"[..], b"4\r\nabcdXY", b"ffffffffffffffffff\r\n"] {
            let mut state = ChunkState::Size;
            let mut buf = bad.to_vec();
            assert!(matches!(
                decode_chunked(&mut state, &mut buf, &mut Vec::new(), &opts(1 << 20)),
                Err(HttpError::BadRequest(_) | HttpError::PayloadTooLarge)
            ));
        }
    }

    #[test]
    fn head_parsing_rules() {
        let o = opts(100);
        let parse = |s: &str| parse_head(s.as_bytes(), &o);
        let (h, _) = parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert!(h.keep_alive && !h.http10 && h.body == BodyKind::None);
        let (h, _) = parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let (h, _) = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let (h, _) = parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n").err(),
            Some(HttpError::PayloadTooLarge)
        );
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
        assert!(matches!(
            parse("\x01\x02 garbage\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
    }
}
