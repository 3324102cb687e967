//! Outbox benchmark (ignored by default; `bench/outbox.sh` runs it in release mode): events
//! caused by real HTTP requests — `PUT /api/v1/auth/me` on a keep-alive connection, which
//! commits the change with its `user.updated` event and outbox rows, exactly as any handler
//! does, and wakes the worker the way the request pipeline does — → received by local HTTP
//! receivers. Nothing here calls the outbox directly. Prints deliveries/s and latency
//! percentiles, for bursts, paced runs and the slow-receiver case.
//!
//! The commit happens inside the request, so its instant is bracketed by the request: latency
//! is reported from the answer (the client has read the response; a delivery that overtook
//! the answer counts 0) — what a caller observes — and, as an upper bound, from the moment
//! the request was sent.

mod common;
use common::TestServer;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[webhooks]
allow_http = true
allow_private_addresses = true
"#;

/// A keep-alive HTTP receiver that records (sequence number, arrival time) of each body.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(u64, Instant)>>>,
    delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    fn start(delay_ms: u64) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Receiver {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            got: Arc::new(Mutex::new(Vec::new())),
            delay_ms: Arc::new(AtomicU64::new(delay_ms)),
        };
        let r2 = r.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let r = r2.clone();
                std::thread::spawn(move || r.serve(conn));
            }
        });
        r
    }

    fn serve(&self, conn: TcpStream) {
        let _ = conn.set_nodelay(true);
        let mut w = conn.try_clone().unwrap();
        let mut rd = BufReader::new(conn);
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if rd.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if rd.read_exact(&mut body).is_err() {
                return;
            }
            let at = Instant::now();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if let Some(seq) = v["data"]["user"]["name"]
                .as_str()
                .and_then(|n| n.strip_prefix("seq "))
                .and_then(|n| n.parse().ok())
            {
                self.got.lock().unwrap().push((seq, at));
            }
            let d = self.delay_ms.load(Ordering::Relaxed);
            if d > 0 {
                std::thread::sleep(Duration::from_millis(d));
            }
            if w.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

/// The instants bracketing one request's commit: sent, and answered (response read).
#[derive(Clone, Copy)]
struct Commit {
    sent: Instant,
    answered: Instant,
}

/// One keep-alive HTTP/1.1 connection to the server.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(base: &str) -> Client {
        let s = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    /// Sends one request and reads its response; returns the status.
    fn request(&mut self, head: &str, body: &str) -> u16 {
        let req = format!(
            "{head}Host: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.w.write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).unwrap();
        status
    }
}

struct Bench {
    _s: TestServer,
    client: Client,
    head: String,
}

impl Bench {
    /// A server, an org with one member (logged in), and an endpoint per receiver subscribed
    /// to `events`, made through the API as an org owner would.
    fn new(receivers: &[&Receiver], events: &[&str]) -> Bench {
        let mut s = TestServer::start_with(CONFIG);
        s.org("bench-org", json!({}));
        s.user("owner@bench.test", Some(("bench-org", "owner")));
        let token = s.login_ok("bench-org", "owner@bench.test")["accessToken"]
            .as_str()
            .unwrap()
            .to_string();
        for rx in receivers {
            let r = s.as_user(
                "POST",
                "/api/v1/org/webhooks",
                "bench-org",
                &token,
                Some(json!({ "url": rx.url, "events": events })),
            );
            assert_eq!(r.status, 201, "{:?}", r.json());
        }
        let head = format!(
            "PUT /api/v1/auth/me HTTP/1.1\r\nX-Org-Slug: bench-org\r\nAuthorization: Bearer {token}\r\n"
        );
        Bench {
            client: Client::connect(&s.base),
            _s: s,
            head,
        }
    }

    /// One request that changes the user's name to `seq N`: one write transaction with its
    /// `user.updated` event, committed and answered by the server as for any client.
    fn emit(&mut self, seq: u64) -> Commit {
        let body = json!({ "name": format!("seq {seq}") }).to_string();
        let sent = Instant::now();
        let status = self.client.request(&self.head, &body);
        let answered = Instant::now();
        assert_eq!(status, 200);
        Commit { sent, answered }
    }
}

fn wait_count(rx: &Receiver, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while rx.count() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} arrived",
            rx.count()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Latencies (ms) of each commit to its first receipt, sorted: (from the answer, a delivery
/// that overtook the answer counting 0; from the request being sent).
fn latencies(commits: &[Commit], rx: &Receiver) -> (Vec<f64>, Vec<f64>) {
    let got = rx.got.lock().unwrap();
    let mut first = vec![None; commits.len()];
    for (seq, at) in got.iter() {
        let slot = &mut first[*seq as usize];
        if slot.is_none() {
            *slot = Some(*at);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (mut answered, mut sent): (Vec<f64>, Vec<f64>) = first
        .iter()
        .zip(commits)
        .map(|(r, c)| {
            let r = r.expect("every event arrives");
            (
                ms(r.saturating_duration_since(c.answered)),
                ms(r.saturating_duration_since(c.sent)),
            )
        })
        .unzip();
    answered.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sent.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (answered, sent)
}

fn report(name: &str, commits: &[Commit], rxs: &[&Receiver]) {
    let start = commits[0].sent;
    let (mut all, mut upper) = (Vec::new(), Vec::new());
    let mut last = start;
    for rx in rxs {
        let (a, s) = latencies(commits, rx);
        all.extend(a);
        upper.extend(s);
        let l = rx
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| *t)
            .max()
            .unwrap();
        last = last.max(l);
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    upper.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let secs = last.duration_since(start).as_secs_f64();
    let requests = commits.len() as f64
        / commits[commits.len() - 1]
            .answered
            .duration_since(start)
            .as_secs_f64();
    println!(
        "{name}: {} deliveries in {:.2} s = {:.0}/s ({requests:.0} requests/s); answer→receipt p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; request sent→receipt p50 {:.1} ms, p99 {:.1} ms",
        all.len(),
        secs,
        all.len() as f64 / secs,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all[all.len() - 1],
        percentile(&upper, 0.5),
        percentile(&upper, 0.99),
    );
}

/// `total` requests, one every `every`, on the bench's connection.
fn paced(b: &mut Bench, total: u64, every: Duration) -> Vec<Commit> {
    let t0 = Instant::now();
    (0..total)
        .map(|i| {
            let due = t0 + every * i as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            b.emit(i)
        })
        .collect()
}

#[test]
#[ignore = "benchmark: run with bench/outbox.sh"]
fn outbox_throughput_and_latency() {
    let n: u64 = std::env::var("OUTBOX_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let events = &["user.updated"];

    // 1. Requests one at a time, 10 per second, one endpoint: the worker is idle before each
    //    (the case of issue 13: every delivery waited for the scheduler's 5 s idle cap).
    {
        let rx = Receiver::start(0);
        let mut b = Bench::new(&[&rx], events);
        let total = (n / 100).clamp(20, 100);
        let commits = paced(&mut b, total, Duration::from_millis(100));
        wait_count(&rx, total as usize, Duration::from_secs(60));
        report("paced 10/s (idle worker), 1 endpoint", &commits, &[&rx]);
    }

    // 2. Paced at 500 requests/s, one endpoint: latency when the worker keeps up.
    {
        let rx = Receiver::start(0);
        let mut b = Bench::new(&[&rx], events);
        let total = (n / 2).max(100);
        let commits = paced(&mut b, total, Duration::from_micros(2000));
        wait_count(&rx, total as usize, Duration::from_secs(60));
        report("paced 500/s, 1 endpoint", &commits, &[&rx]);
    }

    // 3. Burst, one endpoint: requests back to back on one connection, deliveries follow.
    {
        let rx = Receiver::start(0);
        let mut b = Bench::new(&[&rx], events);
        let commits: Vec<Commit> = (0..n).map(|i| b.emit(i)).collect();
        wait_count(&rx, n as usize, Duration::from_secs(120));
        report("burst, 1 endpoint", &commits, &[&rx]);
    }

    // 4. Burst, four endpoints (four lanes in parallel).
    {
        let rxs: Vec<Receiver> = (0..4).map(|_| Receiver::start(0)).collect();
        let refs: Vec<&Receiver> = rxs.iter().collect();
        let mut b = Bench::new(&refs, events);
        let commits: Vec<Commit> = (0..n).map(|i| b.emit(i)).collect();
        for rx in &rxs {
            wait_count(rx, n as usize, Duration::from_secs(120));
        }
        report("burst, 4 endpoints", &commits, &refs);
    }

    // 5. Slow-receiver isolation: one endpoint takes 2 s per request; the other is measured.
    {
        let slow = Receiver::start(2000);
        let fast = Receiver::start(0);
        let mut b = Bench::new(&[&slow, &fast], events);
        let total = 500;
        let commits = paced(&mut b, total, Duration::from_micros(4000));
        wait_count(&fast, total as usize, Duration::from_secs(60));
        report(
            "slow-receiver isolation (fast endpoint, 250/s, other endpoint 2 s/request)",
            &commits,
            &[&fast],
        );
        println!(
            "  slow endpoint meanwhile received {} (one at a time)",
            slow.count()
        );
    }
}
