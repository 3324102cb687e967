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
//! * **One poller thread** (the `polling` crate: epoll/kqueue/IOCP) owns the listener and waits
//!   for every connection that is *parked*: idle between keep-alive requests, half-way through a
//!   request whose next bytes have not arrived, or lingering after an error response. A parked
//!   connection costs a socket and a small struct, never a thread, so 2,000 idle sockets add
//!   zero threads. The parked set is shared (`poller::Parking`): a worker parks what it served
//!   itself, and wakes the poller only for a deadline earlier than its next wake-up.
//! * **A fixed pool of `threads` workers** is fed through one FIFO queue (`Mutex<VecDeque>` +
//!   `Condvar`). The poller pushes a connection at the back when it becomes readable; the next free
//!   worker pops from the front. Service order is arrival order, so no connection can be starved
//!   by a busy one (the tiny_http failure mode).
//! * **One request per turn.** A worker reads (non-blocking) until one request is complete, runs
//!   the handler, writes the response with one flush, and gives the connection back: to the
//!   parked set (re-armed for readability, with an idle deadline) or, if pipelined bytes are already
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
//! * **Panics are contained**: the handler runs under `catch_unwind` (→ 500 JSON with the request
//!   id); the whole turn is also wrapped so that no bug or client input can kill a worker. Each
//!   panic is one log line, without the standard hook's report (`panics.rs`).
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
//!
//! # Layout
//!
//! * `mod.rs` (this file): the public API ([`ServerOptions`], [`Handler`], [`ServerHandle`],
//!   [`serve`]) and the state the threads share: `Ctx` and the connection (`Conn`, its
//!   `Phase` and the guard that counts it against `max_connections`).
//! * `poller.rs`: the parked set shared with the workers (`Parking`: park, deadlines) and the
//!   poller thread: accepting (and the acceptor's 503), readiness, expiry, lingering.
//! * `worker.rs`: the FIFO queue and the worker pool: one turn = read one request, run the
//!   handler, write the answer, give the connection back (park, requeue, linger, close, upgrade).
//! * `read.rs`: the per-connection request state machine over the non-blocking socket.
//! * `parse.rs`: pure parsing: the request head (httparse, framing rules, limits) and the
//!   incremental chunked decoder.
//! * `write.rs`: response writing (framing, managed headers, `Date`), the layer's own error
//!   answers, and the blocking-write helpers.
//! * `panics.rs`: the panic hook and `catch`: one log line per panic in a turn.
//! * `fuzzing.rs`: hidden entry points for the fuzz targets in `fuzz/`.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use polling::{Event, Poller};

use poller::{LISTENER_KEY, Parking, PollerLoop};
use read::ReqState;
use worker::{Queue, worker_loop};

pub mod fuzzing;
mod panics;
mod parse;
mod poller;
mod read;
mod worker;
mod write;

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
    panics::install_hook();
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let poller = Poller::new()?;
    poller.add(&listener, Event::readable(LISTENER_KEY))?;

    let ctx = Arc::new(Ctx {
        opts,
        handler,
        queue: Queue::default(),
        parking: Parking::default(),
        poller,
        stopping: AtomicBool::new(false),
        open: Arc::new(AtomicUsize::new(0)),
    });
    // Built incrementally: if a spawn fails, dropping the handle stops what was started.
    let mut handle = ServerHandle {
        addr,
        ctx: Arc::clone(&ctx),
        poller_thread: None,
        workers: Vec::with_capacity(ctx.opts.threads),
    };
    for i in 0..ctx.opts.threads {
        let ctx = Arc::clone(&ctx);
        let t = thread::Builder::new()
            .name(format!("http-worker-{i}"))
            .spawn(move || worker_loop(&ctx))?;
        handle.workers.push(t);
    }
    let poller_loop = PollerLoop::new(Arc::clone(&ctx), listener);
    let t = thread::Builder::new()
        .name("http-poller".to_string())
        .spawn(move || poller_loop.run())?;
    handle.poller_thread = Some(t);
    Ok(handle)
}

/// State shared by the poller, the workers and the handle.
struct Ctx {
    opts: ServerOptions,
    handler: Handler,
    queue: Queue,
    parking: Parking,
    poller: Poller,
    stopping: AtomicBool,
    open: Arc<AtomicUsize>,
}

impl Ctx {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
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
    /// Whether the socket is in the poller's interest list. Every registration is one-shot:
    /// once its readiness was reported it stays listed but disarmed, and parking it again
    /// re-arms it (one `epoll_ctl` instead of a delete and an add per request). Closing the
    /// socket takes it off the list.
    registered: bool,
    _guard: ConnGuard,
}
