//! Outbox benchmark (ignored by default; `bench/outbox.sh` runs it in release mode): events
//! committed one per transaction, as handlers do, → received by local HTTP receivers.
//! Prints deliveries/s and commit→receipt latency percentiles, and the slow-receiver case.

mod common;
use common::TestServer;
use latchkey::outbox;
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
            let seq = v["data"]["seq"].as_u64().unwrap();
            self.got.lock().unwrap().push((seq, at));
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

struct Bench {
    s: TestServer,
    org: (String, String),
}

impl Bench {
    fn new(receivers: &[&Receiver], events: &[&str]) -> Bench {
        let mut s = TestServer::start_with(CONFIG);
        let r = s.admin_send(
            "POST",
            "/api/v1/admin/orgs",
            Some(json!({ "slug": "bench-org", "name": "Bench" })),
        );
        let org_id = r.data()["org"]["id"].as_str().unwrap().to_string();
        let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        for rx in receivers {
            let st = s.state();
            st.db
                .write(|tx| {
                    outbox::create_endpoint(
                        tx,
                        st.secret(),
                        &org_id,
                        &rx.url,
                        &events,
                        None,
                        st.now(),
                    )
                })
                .unwrap();
        }
        Bench {
            s,
            org: (org_id, "bench-org".into()),
        }
    }

    /// One event in its own transaction, then notify (what a handler does); returns the
    /// instant the commit finished.
    fn emit(&self, seq: u64) -> Instant {
        let st = self.s.state();
        st.db
            .write(|tx| {
                outbox::emit(
                    tx,
                    Some((&self.org.0, &self.org.1)),
                    "user.updated",
                    json!({ "seq": seq, "user": { "id": "usr_bench", "email": "b@example.com" } }),
                    st.now(),
                )
            })
            .unwrap();
        let at = Instant::now();
        st.outbox.notify();
        at
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

/// Latencies (ms) of each commit to its first receipt, sorted.
fn latencies(commits: &[Instant], rx: &Receiver) -> Vec<f64> {
    let got = rx.got.lock().unwrap();
    let mut first = vec![None; commits.len()];
    for (seq, at) in got.iter() {
        let slot = &mut first[*seq as usize];
        if slot.is_none() {
            *slot = Some(*at);
        }
    }
    let mut v: Vec<f64> = first
        .iter()
        .zip(commits)
        .map(|(r, c)| {
            r.expect("every event arrives")
                .saturating_duration_since(*c)
                .as_secs_f64()
                * 1000.0
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

fn report(name: &str, commits: &[Instant], rxs: &[&Receiver]) {
    let start = commits[0];
    let mut all = Vec::new();
    let mut last = start;
    for rx in rxs {
        all.extend(latencies(commits, rx));
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
    let secs = last.duration_since(start).as_secs_f64();
    println!(
        "{name}: {} deliveries in {:.2} s = {:.0}/s; commit→receipt p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        all.len(),
        secs,
        all.len() as f64 / secs,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all[all.len() - 1],
    );
}

#[test]
#[ignore = "benchmark: run with bench/outbox.sh"]
fn outbox_throughput_and_latency() {
    let n: u64 = std::env::var("OUTBOX_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);

    // 1. Burst, one endpoint: commits as fast as one thread can, deliveries follow.
    {
        let rx = Receiver::start(0);
        let b = Bench::new(&[&rx], &["*"]);
        let commits: Vec<Instant> = (0..n).map(|i| b.emit(i)).collect();
        wait_count(&rx, n as usize, Duration::from_secs(120));
        report("burst, 1 endpoint", &commits, &[&rx]);
    }

    // 2. Burst, four endpoints (four lanes in parallel).
    {
        let rxs: Vec<Receiver> = (0..4).map(|_| Receiver::start(0)).collect();
        let refs: Vec<&Receiver> = rxs.iter().collect();
        let b = Bench::new(&refs, &["*"]);
        let commits: Vec<Instant> = (0..n).map(|i| b.emit(i)).collect();
        for rx in &rxs {
            wait_count(rx, n as usize, Duration::from_secs(120));
        }
        report("burst, 4 endpoints", &commits, &refs);
    }

    // 3. Paced at 500 events/s, one endpoint: latency when the worker keeps up.
    {
        let rx = Receiver::start(0);
        let b = Bench::new(&[&rx], &["*"]);
        let total = (n / 2).max(100);
        let t0 = Instant::now();
        let commits: Vec<Instant> = (0..total)
            .map(|i| {
                let due = t0 + Duration::from_micros(i * 2000);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                b.emit(i)
            })
            .collect();
        wait_count(&rx, total as usize, Duration::from_secs(60));
        report("paced 500/s, 1 endpoint", &commits, &[&rx]);
    }

    // 4. Slow-receiver isolation: one endpoint takes 2 s per request; the other is measured.
    {
        let slow = Receiver::start(2000);
        let fast = Receiver::start(0);
        let b = Bench::new(&[&slow, &fast], &["*"]);
        let total = 500;
        let t0 = Instant::now();
        let commits: Vec<Instant> = (0..total)
            .map(|i| {
                let due = t0 + Duration::from_micros(i * 4000);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                b.emit(i)
            })
            .collect();
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
