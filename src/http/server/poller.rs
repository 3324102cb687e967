//! The poller thread: owns the listener, waits for readiness of every parked connection (idle,
//! mid-request or lingering, each with one deadline), hands readable connections to the worker
//! queue and closes the expired ones. The parked set itself ([`Parking`]) is shared: a worker
//! parks the connection it served, and wakes the poller only for a deadline earlier than the
//! poller's next wake-up.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use polling::Event;

use super::read::ReqState;
use super::write::{HttpError, overloaded_bytes};
use super::{Conn, ConnGuard, Ctx, Phase};

pub(super) const LISTENER_KEY: usize = 0;
/// Connections accepted per listener wake-up before other events get a turn.
const ACCEPT_BATCH: usize = 128;
/// Back-off after an accept error such as EMFILE, so the poller does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Longest poller sleep (deadlines are also checked on every wake-up).
const MAX_POLL_WAIT: Duration = Duration::from_secs(1);

/// Whether parking a connection may wake the poller (see [`Parking::park`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    IfEarlier,
    No,
}

/// Every parked connection under its key, with its deadline; shared by the poller and the
/// workers behind one lock, held for map updates and for the one `epoll_ctl` that arms a
/// connection.
///
/// A worker parks the connection it just served itself. Before, each served request went back
/// to the poller through a channel and woke it (an `eventfd` write, a wake-up and the poller's
/// own five system calls per wait) only for the poller to re-arm the socket.
#[derive(Default)]
pub(super) struct Parking {
    inner: Mutex<Parked>,
}

#[derive(Default)]
struct Parked {
    conns: HashMap<usize, Conn>,
    deadlines: BTreeSet<(Instant, usize)>,
    next_key: usize,
    /// When the poller will wake at the latest (set before each wait): parking a connection
    /// due earlier must wake it, or that deadline would be served late.
    wake_by: Option<Instant>,
    /// Set once the poller has closed every parked connection on stop; nothing parks after.
    closed: bool,
}

impl Parking {
    fn lock(&self) -> MutexGuard<'_, Parked> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms `conn` for readability (one-shot, under a fresh key) with its deadline. Dropping
    /// it (on failure, or once the server stops) closes it. A worker passes `Wake::IfEarlier`:
    /// the poller is woken if the deadline comes before its next wake-up. The poller itself
    /// passes `Wake::No`: it recomputes its wait before sleeping again.
    pub(super) fn park(&self, ctx: &Ctx, mut conn: Conn, wake: Wake) {
        let mut p = self.lock();
        if p.closed || ctx.stopping() {
            return;
        }
        let key = p.alloc_key();
        // Armed under the lock and filed before it is released: its event may come at once,
        // and the poller, which takes the lock to look the key up, then finds it.
        let armed = if conn.registered {
            ctx.poller.modify(&conn.stream, Event::readable(key))
        } else {
            ctx.poller.add(&conn.stream, Event::readable(key))
        };
        if armed.is_err() {
            drop(p);
            return;
        }
        conn.registered = true;
        let notify = wake == Wake::IfEarlier && p.wake_by.is_none_or(|t| conn.deadline < t);
        if notify {
            // The poller now wakes by this deadline: later parks due after it need not wake it.
            p.wake_by = Some(conn.deadline);
        }
        p.deadlines.insert((conn.deadline, key));
        p.conns.insert(key, conn);
        drop(p);
        if notify {
            let _ = ctx.poller.notify();
        }
    }

    /// Closes every parked connection and refuses new ones (the poller's exit, also when it
    /// panicked: workers must not go on filing connections that nobody polls).
    fn close(&self, ctx: &Ctx) {
        let conns: Vec<Conn> = {
            let mut p = self.lock();
            p.closed = true;
            p.deadlines.clear();
            p.conns.drain().map(|(_, c)| c).collect()
        };
        for conn in conns {
            let _ = ctx.poller.delete(&conn.stream);
        }
    }

    /// The connection under `key`, off the parked set (its registration, if it fired, stays
    /// listed and disarmed).
    fn take(&self, key: usize) -> Option<Conn> {
        let mut p = self.lock();
        let conn = p.conns.remove(&key)?;
        p.deadlines.remove(&(conn.deadline, key));
        Some(conn)
    }
}

impl Parked {
    fn alloc_key(&mut self) -> usize {
        loop {
            self.next_key = self.next_key.wrapping_add(1);
            let k = self.next_key;
            if k != LISTENER_KEY && k != usize::MAX && !self.conns.contains_key(&k) {
                return k;
            }
        }
    }
}

pub(super) struct PollerLoop {
    ctx: Arc<Ctx>,
    listener: Option<TcpListener>,
    listener_paused_until: Option<Instant>,
}

impl PollerLoop {
    pub(super) fn new(ctx: Arc<Ctx>, listener: TcpListener) -> Self {
        PollerLoop {
            ctx,
            listener: Some(listener),
            listener_paused_until: None,
        }
    }

    pub(super) fn run(mut self) {
        // If the loop panics, the parked set is still closed (on drop), so workers stop
        // filing connections into it and close them instead.
        let _closing = ClosesParking(Arc::clone(&self.ctx));
        let mut events = Vec::new();
        while !self.ctx.stopping() {
            let timeout = self.next_timeout();
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
            let now = Instant::now();
            self.expire(now);
            if self.listener_paused_until.is_some_and(|t| t <= now) {
                self.listener_paused_until = None;
                self.rearm_listener();
            }
        }
        self.close_all();
    }

    /// How long the next wait may last: until the nearest deadline, at most `MAX_POLL_WAIT`.
    /// The wake-up time is left in the parked set for the workers (see [`Parking::park`]).
    fn next_timeout(&self) -> Duration {
        let mut p = self.ctx.parking.lock();
        // Read under the lock: a worker compares its deadline with the wake-up set here.
        let now = Instant::now();
        let mut next = now + MAX_POLL_WAIT;
        if let Some(t) = self.listener_paused_until {
            next = next.min(t);
        }
        if let Some(&(t, _)) = p.deadlines.first() {
            next = next.min(t);
        }
        p.wake_by = Some(next);
        drop(p);
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
            registered: false,
            _guard: ConnGuard::new(&self.ctx.open),
        };
        self.ctx.parking.park(&self.ctx, conn, Wake::No);
    }

    fn on_readable(&mut self, key: usize) {
        let Some(conn) = self.ctx.parking.take(key) else {
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
        self.ctx.parking.park(&self.ctx, conn, Wake::No);
    }

    fn expire(&mut self, now: Instant) {
        let mut expired = Vec::new();
        {
            let mut p = self.ctx.parking.lock();
            while let Some(&(t, key)) = p.deadlines.first() {
                if t > now {
                    break;
                }
                p.deadlines.pop_first();
                expired.extend(p.conns.remove(&key));
            }
        }
        for conn in expired {
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
        self.ctx.parking.close(&self.ctx);
    }
}

/// Closes the parked set when the poller's loop ends, however it ends.
struct ClosesParking(Arc<Ctx>);

impl Drop for ClosesParking {
    fn drop(&mut self) {
        self.0.parking.close(&self.0);
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
