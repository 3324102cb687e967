//! The worker pool and its FIFO queue: one turn reads one request, runs the handler, writes
//! the answer and gives the connection back.

use std::collections::VecDeque;
use std::net::Shutdown;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::panics::{self, RequestInfo};
use super::parse::Head;
use super::poller::Wake;
use super::read::{ReadOutcome, ReqState, read_request};
use super::write::{
    SocketWriter, WRITE_BUFFER, Written, assign_request_id, internal_error_response,
    overloaded_response, write_blocking, write_response,
};
use super::{Conn, Ctx, Phase};

/// How long an errored connection is drained before it is closed (capped by `read_timeout`).
const LINGER: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// FIFO of connections with a complete request or readable bytes, served in arrival order.
#[derive(Default)]
pub(super) struct Queue {
    inner: Mutex<QueueInner>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueInner {
    items: VecDeque<Conn>,
    closed: bool,
}

impl Queue {
    pub(super) fn push(&self, mut conn: Conn) {
        conn.queued_at = Instant::now();
        lock(&self.inner).items.push_back(conn);
        self.ready.notify_one();
    }

    /// Next connection, or `None` once the queue is closed and empty.
    pub(super) fn pop(&self) -> Option<Conn> {
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

    pub(super) fn close(&self) {
        lock(&self.inner).closed = true;
        self.ready.notify_all();
    }
}

/// What to do with a connection after a turn.
enum Next {
    /// Back to the parked set (idle or waiting for more request bytes).
    Park,
    /// Pipelined bytes are buffered: back of the queue, no need to wait for readability.
    Requeue,
    /// Error response sent and write side shut: drain input for a while, then close.
    Linger,
    Close,
    Upgrade(Box<dyn rouille::Upgrade + Send>),
}

pub(super) fn worker_loop(ctx: &Ctx) {
    let mut out = Vec::with_capacity(WRITE_BUFFER);
    while let Some(conn) = ctx.queue.pop() {
        // A panic anywhere in a turn drops that connection, never the worker. (A handler's
        // panic is answered and logged in `serve_one`; this catches the layer's own.)
        let peer = conn.peer.ip();
        if let Err(p) = panics::catch(|| run_turn(ctx, conn, &mut out)) {
            panics::log(&p, None, peer);
        }
    }
}

fn run_turn(ctx: &Ctx, mut conn: Conn, out: &mut Vec<u8>) {
    let next = serve_one(ctx, &mut conn, out);
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
            ctx.parking.park(ctx, conn, Wake::IfEarlier);
        }
        Next::Requeue => ctx.queue.push(conn),
        Next::Linger => {
            conn.phase = Phase::Lingering;
            conn.deadline = now + LINGER.min(ctx.opts.read_timeout);
            ctx.parking.park(ctx, conn, Wake::IfEarlier);
        }
        Next::Close => {}
        Next::Upgrade(mut upgrade) => {
            let Conn { stream, .. } = conn;
            // No longer the poller's (its registration is disarmed; this takes it off the
            // list even if the upgraded code keeps a copy of the socket). The upgraded
            // protocol's own code reads and writes blocking.
            let _ = ctx.poller.delete(&stream);
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(None);
            let _ = stream.set_write_timeout(None);
            upgrade.build(Box::new(stream));
        }
    }
}

/// Serves at most one request on `conn`, whose socket is non-blocking (set at admission;
/// every turn leaves it so).
fn serve_one(ctx: &Ctx, conn: &mut Conn, out: &mut Vec<u8>) -> Next {
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
        mut headers,
        http10,
        keep_alive,
        ..
    } = head;
    let request_id = assign_request_id(&mut headers);
    let info = RequestInfo {
        request_id: &request_id,
        method: &method,
        url: &url,
    };
    let is_head = method == "HEAD";
    let q = ctx.opts.queue_timeout;
    let response = if !q.is_zero() && conn.queued_at.elapsed() > q {
        // Waited too long for a worker: answer at once rather than add to the backlog.
        overloaded_response(&request_id)
    } else {
        let request =
            rouille::Request::fake_http_from(conn.peer, method.clone(), url.clone(), headers, body);
        let handler = &ctx.handler;
        panics::catch(|| handler(&request)).unwrap_or_else(|p| {
            panics::log(&p, Some(&info), conn.peer.ip());
            internal_error_response(&request_id)
        })
    };

    let close = !keep_alive || ctx.stopping();
    let mut socket = SocketWriter::new(&conn.stream);
    // The body reader is the handler's code too.
    let written =
        panics::catch(|| write_response(&mut socket, out, response, is_head, http10, close))
            .inspect_err(|p| panics::log(p, Some(&info), conn.peer.ip()));
    if socket.finish().is_err() {
        return Next::Close;
    }
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
