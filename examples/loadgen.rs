//! A closed-loop HTTP/1.1 keep-alive load generator for Latchkey's benchmarks (`bench/run.sh`).
//!
//! Opens `--connections C` TCP connections to a loopback address (one thread per connection),
//! and on each sends the given request back to back — the next one only after the previous
//! response has been read in full — for `--duration D` seconds (and at most `--requests N`
//! per connection, if given). Responses are parsed properly: `Content-Length`, `chunked`
//! (with extensions and trailers), bodiless statuses, and read-to-EOF bodies. A connection the
//! server closes (or answers with `Connection: close`) is reopened and counted in `reconnects`.
//! Prints one JSON object on stdout:
//!
//! ```text
//! requests, elapsed_s, req_per_s, latency_ms {mean,p50,p90,p99,max}, status {"200": n, ...},
//! errors {kind: n}, reconnects, connections, connections_progressing,
//! requests_per_connection {min,median,max}, [refresh_chains_broken], [server {...}]
//! ```
//!
//! Modes:
//! * fixed request: `--method`, `--header 'K: V'` (repeatable), `--body` (a JSON body gets
//!   `Content-Type: application/json` unless a Content-Type header is given);
//! * `--bodies FILE`: one body per line; connection `i` sends line `i mod lines`;
//! * `--refresh-tokens FILE`: one refresh token per line, connection `i` starts with line `i`
//!   (the file must hold at least C tokens, so every connection has its own session); each
//!   request is `POST` with body `{"refreshToken": T}`, and the `refreshToken` of each 200
//!   response (in `data`, or at the top level) is used for that connection's next request. A
//!   non-200 answer ends that connection's chain (counted in `refresh_chains_broken`).
//!
//! Extras: `--save-field NAME --save-to FILE` writes `data.NAME` of every 200 response to
//! FILE, one per line (how `bench/run.sh` mints refresh tokens); `--watch-pid PID` samples
//! `/proc/PID/status` every 100 ms during the run and reports the server's peak `VmRSS`,
//! `VmHWM` and thread count. Latency is measured per request, from the first byte written to
//! the last byte of the response read; `req_per_s` is completed responses divided by the wall
//! time from the common start until every connection has finished its last request.
//!
//! Only loopback targets are accepted: this is a benchmark tool, not a way to load other hosts.
//!
//! ```sh
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080/healthz \
//!     --connections 64 --duration 10
//! ```

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: loadgen --url http://127.0.0.1:PORT/PATH [options]
  --method M              request method (default GET; POST with --refresh-tokens)
  --header 'K: V'         a request header (repeatable)
  --body TEXT             request body (JSON gets Content-Type: application/json)
  --bodies FILE           one body per line; connection i sends line i mod lines
  --refresh-tokens FILE   refresh-rotation mode: POST {\"refreshToken\":T}, T from each answer
  --connections C         concurrent keep-alive connections, one thread each (default 1, max 1024)
  --duration D            seconds to run, fractions allowed (default 10)
  --requests N            at most N requests per connection (default: no cap)
  --timeout S             per-request I/O timeout in seconds (default 60)
  --watch-pid PID         sample /proc/PID/status (VmRSS, VmHWM, Threads) during the run
  --save-field NAME       with --save-to: save data.NAME of every 200 response
  --save-to FILE          where --save-field values go, one per line
  --label TEXT            copied into the JSON output";

const MAX_CONNECTIONS: usize = 1024;
const MAX_HEAD_BYTES: usize = 1 << 20;

struct Target {
    addr: SocketAddr,
    host_header: String,
    path: String,
}

#[derive(Clone)]
enum BodySource {
    None,
    Fixed(String),
    PerConnection(Arc<Vec<String>>),
    Refresh(Arc<Vec<String>>),
}

struct Opts {
    target: Target,
    method: String,
    headers: Vec<(String, String)>,
    body: BodySource,
    connections: usize,
    duration: Duration,
    requests: Option<u64>,
    timeout: Duration,
    watch_pid: Option<u32>,
    save_field: Option<String>,
    save_to: Option<String>,
    label: Option<String>,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must start with http:// (no TLS here)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err("--url has no host".into());
    }
    let with_port = if authority.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
    }) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{authority} is not a loopback address; loadgen only loads this machine"
        ));
    }
    Ok(Target {
        addr,
        host_header: authority.to_string(),
        path: path.to_string(),
    })
}

fn read_lines(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return Err(format!("{path} holds no lines"));
    }
    Ok(lines)
}

fn parse_args(args: Vec<String>) -> Result<Opts, String> {
    let mut url = None;
    let mut method = None;
    let mut headers = Vec::new();
    let mut body = None;
    let mut bodies = None;
    let mut refresh = None;
    let mut connections = 1usize;
    let mut duration = 10.0f64;
    let mut requests = None;
    let mut timeout = 60.0f64;
    let mut watch_pid = None;
    let mut save_field = None;
    let mut save_to = None;
    let mut label = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n > 0.0)
                .ok_or_else(|| format!("{flag}: {v:?} is not a positive number"))
        };
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--method" => method = Some(value()?.to_ascii_uppercase()),
            "--header" | "-H" => {
                let h = value()?;
                let (k, v) = h
                    .split_once(':')
                    .ok_or_else(|| format!("--header {h:?}: expected 'Name: value'"))?;
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            "--body" => body = Some(value()?),
            "--bodies" => bodies = Some(value()?),
            "--refresh-tokens" => refresh = Some(value()?),
            "--connections" | "-c" => connections = num(value()?)? as usize,
            "--duration" | "-d" => duration = num(value()?)?,
            "--requests" | "-n" => requests = Some(num(value()?)? as u64),
            "--timeout" => timeout = num(value()?)?,
            "--watch-pid" => {
                let v = value()?;
                watch_pid = Some(v.parse().map_err(|_| format!("--watch-pid {v:?}"))?);
            }
            "--save-field" => save_field = Some(value()?),
            "--save-to" => save_to = Some(value()?),
            "--label" => label = Some(value()?),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let target = parse_url(&url.ok_or_else(|| format!("--url is required\n{USAGE}"))?)?;
    if connections == 0 || connections > MAX_CONNECTIONS {
        return Err(format!("--connections must be 1..={MAX_CONNECTIONS}"));
    }
    if duration > 3600.0 {
        return Err("--duration is capped at 3600 s".into());
    }
    if save_field.is_some() != save_to.is_some() {
        return Err("--save-field and --save-to go together".into());
    }
    let sources = [body.is_some(), bodies.is_some(), refresh.is_some()];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err("use only one of --body, --bodies, --refresh-tokens".into());
    }
    let body = if let Some(b) = body {
        BodySource::Fixed(b)
    } else if let Some(f) = bodies {
        BodySource::PerConnection(Arc::new(read_lines(&f)?))
    } else if let Some(f) = refresh {
        let tokens = read_lines(&f)?;
        if tokens.len() < connections {
            return Err(format!(
                "{f} holds {} tokens; each of the {connections} connections needs its own",
                tokens.len()
            ));
        }
        BodySource::Refresh(Arc::new(tokens))
    } else {
        BodySource::None
    };
    let method = method.unwrap_or_else(|| {
        if matches!(body, BodySource::Refresh(_)) {
            "POST".into()
        } else {
            "GET".into()
        }
    });
    Ok(Opts {
        target,
        method,
        headers,
        body,
        connections,
        duration: Duration::from_secs_f64(duration),
        requests,
        timeout: Duration::from_secs_f64(timeout),
        watch_pid,
        save_field,
        save_to,
        label,
    })
}

/// The bytes of one request.
fn build_request(o: &Opts, body: Option<&str>) -> Vec<u8> {
    let has = |name: &str| o.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut head = format!("{} {} HTTP/1.1\r\n", o.method, o.target.path);
    if !has("Host") {
        head.push_str(&format!("Host: {}\r\n", o.target.host_header));
    }
    for (k, v) in &o.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !has("Content-Type") {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b.as_bytes());
    }
    bytes
}

struct Response {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

/// One client connection with its read buffer (bytes past the current response stay in it).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    fn open(addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Reads more bytes into the buffer; EOF is an error (`eof`).
    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("eof".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err("timeout".into())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(format!("read: {:?}", e.kind())),
        }
    }

    /// One line ending in CRLF, without it.
    fn line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err("parse: line too long".into());
            }
            self.fill()?;
        }
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn chunked_body(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.line()?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| format!("parse: bad chunk size {size_text:?}"))?;
            if size == 0 {
                // Trailer fields, then the empty line.
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            let chunk = self.take(size + 2)?;
            if &chunk[size..] != b"\r\n" {
                return Err("parse: chunk not followed by CRLF".into());
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }

    /// Reads one complete response (skipping interim 1xx answers).
    fn response(&mut self, head_request: bool) -> Result<Response, String> {
        loop {
            let end = loop {
                if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                    break i + 4;
                }
                if self.buf.len() > MAX_HEAD_BYTES {
                    return Err("parse: response head too large".into());
                }
                self.fill()?;
            };
            let head: Vec<u8> = self.buf.drain(..end).collect();
            let head = String::from_utf8_lossy(&head[..end - 4]).into_owned();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            let mut parts = status_line.splitn(3, ' ');
            let version = parts.next().unwrap_or("");
            if !version.starts_with("HTTP/1.") {
                return Err(format!("parse: bad status line {status_line:?}"));
            }
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("parse: bad status line {status_line:?}"))?;
            let mut content_length = None;
            let mut chunked = false;
            let mut close = version == "HTTP/1.0";
            for l in lines {
                let Some((k, v)) = l.split_once(':') else {
                    return Err(format!("parse: bad header line {l:?}"));
                };
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = Some(
                        v.parse::<usize>()
                            .map_err(|_| format!("parse: bad Content-Length {v:?}"))?,
                    );
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v
                        .rsplit(',')
                        .next()
                        .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
                } else if k.eq_ignore_ascii_case("connection") {
                    for t in v.split(',') {
                        if t.trim().eq_ignore_ascii_case("close") {
                            close = true;
                        } else if t.trim().eq_ignore_ascii_case("keep-alive") {
                            close = false;
                        }
                    }
                }
            }
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let body = if head_request || status == 204 || status == 304 || status < 200 {
                Vec::new()
            } else if chunked {
                self.chunked_body()?
            } else if let Some(n) = content_length {
                self.take(n)?
            } else {
                // No framing: the body runs to EOF.
                loop {
                    match self.fill() {
                        Ok(()) => {}
                        Err(e) if e == "eof" => break,
                        Err(e) => return Err(e),
                    }
                }
                close = true;
                std::mem::take(&mut self.buf)
            };
            return Ok(Response {
                status,
                body,
                close,
            });
        }
    }
}

#[derive(Default)]
struct ConnStats {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    reconnects: u64,
    completed: u64,
    chain_broken: bool,
    saved: Vec<String>,
}

/// `data.NAME` of a success envelope, else a top-level `NAME`, as a string.
fn field_of(body: &[u8], name: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let found = v
        .get("data")
        .and_then(|d| d.get(name))
        .or_else(|| v.get(name))?;
    found.as_str().map(str::to_string)
}

fn run_connection(
    o: &Opts,
    index: usize,
    start: &Barrier,
    save: bool,
    connected: Option<Conn>,
) -> ConnStats {
    let mut st = ConnStats::default();
    let mut refresh_token = match &o.body {
        BodySource::Refresh(tokens) => Some(tokens[index].clone()),
        _ => None,
    };
    let fixed = match &o.body {
        BodySource::None => Some(build_request(o, None)),
        BodySource::Fixed(b) => Some(build_request(o, Some(b))),
        BodySource::PerConnection(lines) => {
            Some(build_request(o, Some(&lines[index % lines.len()])))
        }
        BodySource::Refresh(_) => None,
    };
    let head_request = o.method == "HEAD";
    let mut conn = connected;
    start.wait();
    let deadline = Instant::now() + o.duration;
    let cap = o.requests.unwrap_or(u64::MAX);
    while Instant::now() < deadline && st.completed < cap {
        if conn.is_none() {
            match Conn::open(o.target.addr, o.timeout) {
                Ok(c) => {
                    st.reconnects += 1;
                    conn = Some(c);
                }
                Err(e) => {
                    *st.errors
                        .entry(format!("connect: {:?}", e.kind()))
                        .or_default() += 1;
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let rotated;
        let bytes: &[u8] = match (&fixed, &refresh_token) {
            (Some(b), _) => b,
            (None, Some(t)) => {
                rotated = build_request(o, Some(&json!({ "refreshToken": t }).to_string()));
                &rotated
            }
            (None, None) => unreachable!("refresh mode always holds a token"),
        };
        let t0 = Instant::now();
        let result = c
            .stream
            .write_all(bytes)
            .map_err(|e| format!("write: {:?}", e.kind()))
            .and_then(|()| c.response(head_request));
        let elapsed = t0.elapsed();
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                // The server closed or the request timed out: count it and reconnect. (A
                // refresh whose answer was lost is retried with the same token: the server's
                // grace window returns the same successor.)
                *st.errors.entry(e).or_default() += 1;
                conn = None;
                continue;
            }
        };
        st.completed += 1;
        st.latencies_us.push(elapsed.as_micros() as u64);
        *st.statuses.entry(resp.status).or_default() += 1;
        if save
            && resp.status == 200
            && let Some(name) = &o.save_field
            && let Some(v) = field_of(&resp.body, name)
        {
            st.saved.push(v);
        }
        if refresh_token.is_some() {
            match field_of(&resp.body, "refreshToken").filter(|_| resp.status == 200) {
                Some(t) => refresh_token = Some(t),
                None => {
                    st.chain_broken = true;
                    break;
                }
            }
        }
        if resp.close {
            conn = None;
        }
    }
    st
}

#[derive(Default)]
struct ProcSample {
    samples: u64,
    rss_max_kb: u64,
    hwm_kb: u64,
    threads_max: u64,
    threads_min: u64,
}

fn read_status(pid: u32) -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?, field("Threads:")?))
}

fn watch(pid: u32, stop: &AtomicBool) -> ProcSample {
    let mut s = ProcSample {
        threads_min: u64::MAX,
        ..Default::default()
    };
    loop {
        if let Some((rss, hwm, threads)) = read_status(pid) {
            s.samples += 1;
            s.rss_max_kb = s.rss_max_kb.max(rss);
            s.hwm_kb = s.hwm_kb.max(hwm);
            s.threads_max = s.threads_max.max(threads);
            s.threads_min = s.threads_min.min(threads);
        }
        if stop.load(Ordering::Relaxed) {
            return s;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

fn ms(us: f64) -> f64 {
    (us / 10.0).round() / 100.0
}

fn run(o: Opts) -> Result<Value, String> {
    let o = Arc::new(o);
    let barrier = Arc::new(Barrier::new(o.connections + 1));
    let mut handles = Vec::with_capacity(o.connections);
    let mut initial_errors: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..o.connections {
        // Connect before the start line so that set-up is not timed; a failure here is
        // counted and retried inside the loop.
        let conn = match Conn::open(o.target.addr, o.timeout) {
            Ok(c) => Some(c),
            Err(e) => {
                *initial_errors
                    .entry(format!("connect: {:?}", e.kind()))
                    .or_default() += 1;
                None
            }
        };
        let (o2, b2) = (o.clone(), barrier.clone());
        let save = o.save_field.is_some();
        let h = thread::Builder::new()
            .name(format!("loadgen-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || run_connection(&o2, i, &b2, save, conn))
            .map_err(|e| format!("cannot start thread {i}: {e}"))?;
        handles.push(h);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = o.watch_pid.map(|pid| {
        let stop = stop.clone();
        thread::spawn(move || watch(pid, &stop))
    });
    barrier.wait();
    let started = Instant::now();
    let mut all: Vec<ConnStats> = Vec::with_capacity(handles.len());
    for h in handles {
        all.push(h.join().map_err(|_| "a connection thread panicked")?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let proc = watcher.map(|w| w.join().unwrap_or_default());

    let mut latencies: Vec<u64> = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut errors = initial_errors;
    let mut per_conn: Vec<u64> = Vec::with_capacity(all.len());
    let mut reconnects = 0;
    let mut broken = 0;
    let mut saved = Vec::new();
    for s in all {
        latencies.extend_from_slice(&s.latencies_us);
        for (k, v) in s.statuses {
            *statuses.entry(k).or_default() += v;
        }
        for (k, v) in s.errors {
            *errors.entry(k).or_default() += v;
        }
        per_conn.push(s.completed);
        reconnects += s.reconnects;
        broken += u64::from(s.chain_broken);
        saved.extend(s.saved);
    }
    latencies.sort_unstable();
    per_conn.sort_unstable();
    let total: u64 = per_conn.iter().sum();
    let mean = if latencies.is_empty() {
        0.0
    } else {
        latencies.iter().sum::<u64>() as f64 / latencies.len() as f64
    };
    let status_json: Map<String, Value> = statuses
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut out = json!({
        "url": format!("http://{}{}", o.target.host_header, o.target.path),
        "method": o.method,
        "connections": o.connections,
        "duration_s": o.duration.as_secs_f64(),
        "requests": total,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "req_per_s": if elapsed > 0.0 { (total as f64 / elapsed * 10.0).round() / 10.0 } else { 0.0 },
        "latency_ms": {
            "mean": ms(mean),
            "p50": ms(percentile(&latencies, 50.0)),
            "p90": ms(percentile(&latencies, 90.0)),
            "p99": ms(percentile(&latencies, 99.0)),
            "max": ms(latencies.last().copied().unwrap_or(0) as f64),
        },
        "status": status_json,
        "errors": errors,
        "reconnects": reconnects,
        "connections_progressing": per_conn.iter().filter(|n| **n > 0).count(),
        "requests_per_connection": {
            "min": per_conn.first().copied().unwrap_or(0),
            "median": per_conn.get(per_conn.len().saturating_sub(1) / 2).copied().unwrap_or(0),
            "max": per_conn.last().copied().unwrap_or(0),
        },
    });
    if let Some(l) = &o.label {
        out["label"] = json!(l);
    }
    if matches!(o.body, BodySource::Refresh(_)) {
        out["refresh_chains_broken"] = json!(broken);
    }
    if let (Some(pid), Some(p)) = (o.watch_pid, proc) {
        out["server"] = if p.samples == 0 {
            json!({ "pid": pid, "samples": 0 })
        } else {
            json!({
                "pid": pid,
                "samples": p.samples,
                "rss_max_mb": (p.rss_max_kb as f64 / 1024.0 * 10.0).round() / 10.0,
                "hwm_mb": (p.hwm_kb as f64 / 1024.0 * 10.0).round() / 10.0,
                "threads_max": p.threads_max,
                "threads_min": p.threads_min,
            })
        };
    }
    if let Some(path) = &o.save_to {
        let mut text = saved.join("\n");
        text.push('\n');
        std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))?;
        out["saved"] = json!(saved.len());
    }
    Ok(out)
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1).collect()) {
        Ok(o) => o,
        Err(e) if e == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).expect("JSON serialises")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
