//! Integration tests for the connection layer in `latchkey::http::server`, over real sockets.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::http::server::{Handler, ServerHandle, ServerOptions, serve};

/// Tests run one at a time: several measure timing or the process's thread count.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn test_opts() -> ServerOptions {
    ServerOptions {
        threads: 4,
        ..ServerOptions::default()
    }
}

/// Echo handler: `/sleep/<ms>` sleeps, `/panic` panics, everything else answers
/// `<METHOD> <url> <peer> <body>`.
fn echo_handler() -> Handler {
    Arc::new(|req: &rouille::Request| {
        let url = req.raw_url().to_string();
        if url == "/panic" {
            panic!("handler panic (expected by the test)");
        }
        if let Some(ms) = url.strip_prefix("/sleep/") {
            thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        }
        if let Some(n) = url.strip_prefix("/big/") {
            return rouille::Response::from_data(
                "application/octet-stream",
                big_body(n.parse().unwrap()),
            );
        }
        let mut body = Vec::new();
        if let Some(mut data) = req.data() {
            data.read_to_end(&mut body).unwrap();
        }
        let text = format!(
            "{} {} {} {}",
            req.method(),
            url,
            req.remote_addr(),
            String::from_utf8_lossy(&body)
        );
        rouille::Response::text(text)
    })
}

/// The body of `/big/<n>`: n bytes of a pattern a truncated or reordered copy would not match.
fn big_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn start(opts: ServerOptions, handler: Handler) -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    serve(listener, opts, handler).unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Some helpers write a request in pieces; without this, Nagle plus the server's delayed
    // ACK would add 40 ms per request.
    s.set_nodelay(true).unwrap();
    s
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads one response; `head` means the request was HEAD (no body follows).
fn read_response_for(r: &mut impl BufRead, head: bool) -> io::Result<Resp> {
    let status_line = read_line(r)?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').unwrap();
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        r.read_exact(&mut body)?;
        resp.body = body;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let size = usize::from_str_radix(&read_line(r)?, 16).unwrap();
            if size == 0 {
                assert_eq!(read_line(r)?, "");
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk)?;
            resp.body.extend_from_slice(&chunk);
            assert_eq!(read_line(r)?, "");
        }
    } else {
        r.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

fn read_response(r: &mut impl BufRead) -> io::Result<Resp> {
    read_response_for(r, false)
}

/// True if the server closed the connection (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    read_response(&mut BufReader::new(s)).unwrap()
}

fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn simple_get() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());
    let resp = get(server.local_addr(), "/hello?x=1");
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().starts_with("GET /hello?x=1 127.0.0.1:"),
        "{}",
        resp.text()
    );
    assert!(resp.header("date").is_some());
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    server.stop();
}

#[test]
fn keep_alive_serves_many_requests_on_one_socket() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());
    let s = connect(server.local_addr());
    let local = s.local_addr().unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for i in 0..10 {
        write!(w, "GET /n/{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), format!("GET /n/{i} {local} "));
        assert!(resp.header("connection").is_none());
    }
    server.stop();
}

#[test]
fn pipelined_requests_in_one_write() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());
    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    w.write_all(
        b"GET /first HTTP/1.1\r\nHost: t\r\n\r\nPOST /second HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /third HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let a = read_response(&mut r).unwrap();
    let b = read_response(&mut r).unwrap();
    let c = read_response(&mut r).unwrap();
    assert!(a.text().starts_with("GET /first "));
    assert!(b.text().starts_with("POST /second ") && b.text().ends_with(" abc"));
    assert!(c.text().starts_with("GET /third "));
    server.stop();
}

#[test]
fn post_bodies_content_length_and_chunked_are_echoed() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());
    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);

    w.write_all(b"POST /cl HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world")
        .unwrap();
    let resp = read_response(&mut r).unwrap();
    assert!(resp.text().ends_with(" hello world"), "{}", resp.text());

    // Chunked, sent in pieces with an extension and a trailer.
    w.write_all(
        b"POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
    )
    .unwrap();
    thread::sleep(Duration::from_millis(50));
    w.write_all(b"lo\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.text().starts_with("POST /chunked "));
    assert!(resp.text().ends_with(" hello world"), "{}", resp.text());

    // A larger body arriving over several reads.
    let big = "x".repeat(300_000);
    write!(
        w,
        "PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{big}",
        big.len()
    )
    .unwrap();
    let resp = read_response(&mut r).unwrap();
    assert!(resp.text().ends_with(&big));
    server.stop();
}

#[test]
fn expect_100_continue() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());
    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(
        b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    )
    .unwrap();
    let interim = read_response(&mut r).unwrap();
    assert_eq!(interim.status, 100);
    w.write_all(b"body").unwrap();
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.text().ends_with(" body"));
    server.stop();
}

#[test]
fn head_and_http10_semantics() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());
    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = read_response_for(&mut r, true).unwrap();
    assert_eq!(head.status, 200);
    assert!(
        head.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    let after = read_response(&mut r).unwrap();
    assert!(
        after.text().starts_with("GET /after "),
        "HEAD must not send a body"
    );

    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut s = connect(server.local_addr());
    s.write_all(b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(closed_within(&mut s, Duration::from_secs(2)));

    // HTTP/1.0 with keep-alive stays open.
    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..2 {
        w.write_all(b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }

    // HTTP/1.1 Connection: close.
    let mut s = connect(server.local_addr());
    s.write_all(b"GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut BufReader::new(s.try_clone().unwrap())).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(closed_within(&mut s, Duration::from_secs(2)));
    server.stop();
}

#[test]
fn streaming_response_uses_chunked_and_handler_headers_are_sanitised() {
    let _g = serial();
    let handler: Handler = Arc::new(|_req: &rouille::Request| {
        let body: Box<dyn Read + Send> = Box::new(io::Cursor::new(b"streamed".to_vec()));
        let mut resp = rouille::Response {
            status_code: 200,
            headers: vec![
                ("Content-Length".into(), "999".into()),
                ("X-Evil".into(), "a\r\nInjected: yes".into()),
                ("X-Good".into(), "ok".into()),
            ],
            data: rouille::ResponseBody::from_reader(body),
            upgrade: None,
        };
        resp.headers
            .push(("Transfer-Encoding".into(), "gzip".into()));
        resp
    });
    let server = start(test_opts(), handler);
    let resp = get(server.local_addr(), "/");
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert!(resp.header("content-length").is_none());
    assert!(resp.header("injected").is_none() && resp.header("x-evil").is_none());
    assert_eq!(resp.header("x-good"), Some("ok"));
    assert_eq!(resp.text(), "streamed");
    server.stop();
}

#[test]
fn big_content_length_gets_413_without_reading_the_body() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());
    let mut s = connect(server.local_addr());
    // Headers only; the 10 MiB body is never sent, so a server waiting for it would hang.
    s.write_all(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 10485760\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let resp = read_response(&mut BufReader::new(s.try_clone().unwrap())).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(resp.status, 413);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.json()["code"], "payload_too_large");
    assert_eq!(resp.json()["status"], "error");
    assert!(closed_within(&mut s, Duration::from_secs(3)));

    // Same with Expect: 100-continue: the 413 comes instead of 100 Continue.
    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    w.write_all(b"POST /big HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 10485760\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!(resp.status, 413);
    server.stop();
}

#[test]
fn chunked_body_past_the_limit_gets_413() {
    let _g = serial();
    let opts = ServerOptions {
        max_body_bytes: 1000,
        ..test_opts()
    };
    let server = start(opts, echo_handler());
    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    w.write_all(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    // 600 + 600 bytes: the second chunk crosses the limit.
    for _ in 0..2 {
        write!(w, "258\r\n{}\r\n", "y".repeat(600)).unwrap();
    }
    let resp = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!(resp.status, 413);
    assert_eq!(resp.json()["code"], "payload_too_large");

    // Exactly at the limit is fine.
    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    write!(
        w,
        "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n{}\r\n0\r\n\r\n",
        "z".repeat(1000)
    )
    .unwrap();
    let resp = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!(resp.status, 200);
    server.stop();
}

#[test]
fn oversized_or_too_many_headers_get_431() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());

    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    let long = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Long: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    // The server may close before reading everything: ignore write errors.
    let _ = w.write_all(long.as_bytes());
    let resp = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!(resp.status, 431);
    assert_eq!(resp.json()["code"], "request_header_fields_too_large");

    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    let mut many = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let _ = w.write_all(many.as_bytes());
    let resp = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!(resp.status, 431);
    server.stop();
}

#[test]
fn garbage_and_ambiguous_framing_get_400() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());
    for raw in [
        &b"\x16\x03\x01\x02\x00garbage\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
    ] {
        let mut s = connect(server.local_addr());
        s.write_all(raw).unwrap();
        let resp = read_response(&mut BufReader::new(s.try_clone().unwrap())).unwrap();
        assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(raw));
        assert_eq!(resp.json()["code"], "invalid_request");
        assert!(closed_within(&mut s, Duration::from_secs(3)));
    }
    server.stop();
}

#[test]
fn handler_panic_becomes_500_and_the_worker_survives() {
    let _g = serial();
    let opts = ServerOptions {
        threads: 1,
        ..test_opts()
    };
    let server = start(opts, echo_handler());
    let s = connect(server.local_addr());
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..3 {
        w.write_all(b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 500);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(
            resp.json(),
            serde_json::json!({"status":"error","code":"internal_error","message":"Internal server error"})
        );
    }
    // The only worker is still alive.
    assert_eq!(get(server.local_addr(), "/ok").status, 200);
    server.stop();
}

#[test]
fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let _g = serial();
    let opts = ServerOptions {
        idle_timeout: Duration::from_millis(300),
        ..test_opts()
    };
    let server = start(opts, echo_handler());
    let mut s = connect(server.local_addr());
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_response(&mut r).unwrap().status, 200);
    let idle_since = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(3)));
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(250),
        "closed too early: {idle:?}"
    );
    // The worker that served the request parked the connection; its deadline, earlier than
    // the poller's next wake-up (up to 1 s away), must wake the poller, or it is served late.
    assert!(
        idle < Duration::from_millis(900),
        "closed too late: {idle:?}"
    );

    // A connection that never sends anything is closed too.
    let mut s = connect(server.local_addr());
    assert!(closed_within(&mut s, Duration::from_secs(3)));
    server.stop();
}

#[test]
fn slow_drip_request_is_cut_off_after_read_timeout() {
    let _g = serial();
    let opts = ServerOptions {
        read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(30),
        threads: 1,
        ..test_opts()
    };
    let server = start(opts, echo_handler());
    let addr = server.local_addr();
    let mut s = connect(addr);
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut closed = false;
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let _ = write!(s, "X-Drip-{i}: 1\r\n");
        i += 1;
        let mut buf = [0u8; 1024];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    let elapsed = started.elapsed();
    assert!(closed, "slow-drip connection was never closed");
    assert!(
        elapsed >= Duration::from_millis(400),
        "cut off too early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2000),
        "cut off too late: {elapsed:?}"
    );
    if !got.is_empty() {
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408 "));
    }
    // The single worker was never held by the dripping client.
    assert_eq!(get(addr, "/ok").status, 200);

    // A dripping client does not hold the only worker: others are served meanwhile.
    let mut dripper = connect(addr);
    dripper.write_all(b"GET /slow HTTP/1.1\r\n").unwrap();
    let t = Instant::now();
    assert_eq!(get(addr, "/fast").status, 200);
    assert!(t.elapsed() < Duration::from_millis(300));
    drop(dripper);
    server.stop();
}

#[test]
fn max_connections_overflow_gets_503_and_existing_ones_keep_working() {
    let _g = serial();
    let opts = ServerOptions {
        max_connections: 4,
        ..test_opts()
    };
    let server = start(opts, echo_handler());
    let addr = server.local_addr();
    let mut conns: Vec<(TcpStream, BufReader<TcpStream>)> = (0..4)
        .map(|_| {
            let s = connect(addr);
            let r = BufReader::new(s.try_clone().unwrap());
            (s, r)
        })
        .collect();
    for (w, r) in &mut conns {
        w.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(r).unwrap().status, 200);
    }
    // The fifth: 503 (or a plain close), never served.
    let mut extra = connect(addr);
    let _ = extra.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    match read_response(&mut BufReader::new(extra.try_clone().unwrap())) {
        Ok(resp) => {
            assert_eq!(resp.status, 503);
            assert_eq!(resp.json()["code"], "overloaded");
            assert_eq!(resp.header("connection"), Some("close"));
        }
        Err(e) => assert!(matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
        )),
    }
    assert!(closed_within(&mut extra, Duration::from_secs(2)));
    for (w, r) in &mut conns {
        w.write_all(b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(r).unwrap().status, 200);
    }
    // Closing one frees a slot.
    drop(conns.pop());
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut s = connect(addr);
        let _ = s.write_all(b"GET /c HTTP/1.1\r\nHost: t\r\n\r\n");
        if read_response(&mut BufReader::new(s)).is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        thread::sleep(Duration::from_millis(20));
    }
    server.stop();
}

#[test]
fn fairness_64_keep_alive_clients_all_get_served() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let s = connect(addr);
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut done = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    w.write_all(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                    assert_eq!(read_response(&mut r).unwrap().status, 200);
                    done += 1;
                }
                done
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<u32> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let min = *counts.iter().min().unwrap();
    let total: u32 = counts.iter().sum();
    eprintln!(
        "fairness: total {total}, min {min}, max {}",
        counts.iter().max().unwrap()
    );
    assert!(min >= 1, "a client was starved: {counts:?}");
    // FIFO service: nobody gets a small fraction of what the luckiest client got.
    let max = *counts.iter().max().unwrap();
    assert!(min * 4 >= max, "unfair service: {counts:?}");
    server.stop();
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn idle_sockets_cost_no_threads() {
    let _g = serial();
    // The nofile soft limit here is 20,000; 2,000 sockets need ~4,000 descriptors in this
    // process (client and server side).
    const IDLE: usize = 2000;
    let before = thread_count();
    let rss_before = rss_kib();
    let opts = ServerOptions {
        threads: 4,
        max_connections: 4096,
        idle_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_secs(2),
        ..test_opts()
    };
    let server = start(opts, echo_handler());
    let addr = server.local_addr();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut s = connect(addr);
        // Every tenth socket does one request and is then parked between requests. The round
        // trip also paces the loop: std's listener backlog is 128, and overflowing it would
        // only measure SYN retransmission delays.
        if i % 10 == 0 {
            s.write_all(b"GET /once HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            assert_eq!(read_response(&mut r).unwrap().status, 200);
        }
        idle.push(s);
    }
    // A few clients slow-drip their requests meanwhile (one byte every 100 ms).
    let drippers: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                let mut s = connect(addr);
                for b in b"GET /drip HTTP/1.1\r\nHost: t\r\n".iter() {
                    if s.write_all(&[*b]).is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let during = thread_count();
    let rss_during = rss_kib();
    eprintln!(
        "threads: before {before}, with {IDLE} idle sockets {during}; RSS {rss_before} -> {rss_during} KiB"
    );
    // workers + poller + the 4 dripping client threads, plus slack for the test harness.
    assert!(
        during <= before + 4 + 1 + 4 + 2,
        "thread count grew with idle sockets: {before} -> {during}"
    );
    // Client and server sides of 2,000 sockets together stay well under 64 MiB.
    assert!(
        rss_during.saturating_sub(rss_before) < 64 * 1024,
        "RSS grew by {} KiB",
        rss_during - rss_before
    );
    let t = Instant::now();
    let resp = get(addr, "/fresh");
    assert_eq!(resp.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "fresh client waited {:?}",
        t.elapsed()
    );
    // After the idle timeout every idle socket has been closed by the server.
    thread::sleep(Duration::from_millis(3500));
    for s in idle.iter_mut().step_by(97) {
        assert!(
            closed_within(s, Duration::from_secs(2)),
            "idle socket still open"
        );
    }
    for d in drippers {
        let _ = d.join();
    }
    drop(idle);
    server.stop();
}

#[test]
fn graceful_stop_finishes_in_flight_requests() {
    let _g = serial();
    let server = start(test_opts(), echo_handler());
    let addr = server.local_addr();
    // An idle keep-alive connection that stop() must close.
    let mut idle = connect(addr);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut BufReader::new(idle.try_clone().unwrap()))
            .unwrap()
            .status,
        200
    );

    let client = thread::spawn(move || {
        let mut s = connect(addr);
        s.write_all(b"GET /sleep/300 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        read_response(&mut BufReader::new(s)).unwrap()
    });
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    server.stop();
    let stop_took = t.elapsed();
    let resp = client.join().unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.text().starts_with("GET /sleep/300 "));
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(
        stop_took < Duration::from_secs(2),
        "stop took {stop_took:?}"
    );
    assert!(closed_within(&mut idle, Duration::from_secs(1)));
    // The listener is gone.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

#[test]
fn requests_that_waited_too_long_for_a_worker_are_shed_with_503() {
    let _g = serial();
    let opts = ServerOptions {
        threads: 1,
        queue_timeout: Duration::from_millis(100),
        ..test_opts()
    };
    let server = start(opts, echo_handler());
    let addr = server.local_addr();
    // Occupy the only worker for 600 ms.
    let busy = thread::spawn(move || get(addr, "/sleep/600"));
    thread::sleep(Duration::from_millis(100));
    let s = connect(addr);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET /late HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("Retry-After"), Some("1"));
    assert!(String::from_utf8_lossy(&resp.body).contains("\"overloaded\""));
    // The connection stays usable, and once the worker is free it is served normally.
    assert_eq!(busy.join().unwrap().status, 200);
    w.write_all(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r).unwrap().status, 200);
    server.stop();
}

/// An answer bigger than the socket's send buffer, to a client that reads it only later,
/// makes the worker wait for the client (the write is switched to blocking, bounded by the
/// write timeout) and arrives whole. The connection goes back to the poller non-blocking: a
/// request that then arrives only in part holds no worker, so with a single worker another
/// client is still served at once.
#[test]
fn a_big_answer_to_a_slow_reader_arrives_whole_and_the_socket_is_parked_again() {
    let _g = serial();
    let opts = ServerOptions {
        threads: 1,
        ..test_opts()
    };
    let server = start(opts, echo_handler());
    let addr = server.local_addr();
    let s = connect(addr);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let n = 32 * 1024 * 1024;
    w.write_all(format!("GET /big/{n} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    // Nothing is read for a while: the server's writes fill both socket buffers.
    thread::sleep(Duration::from_millis(300));
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), n);
    assert!(resp.body == big_body(n), "the body arrived changed");

    // Half a request on the same connection, then a whole one from another client.
    w.write_all(b"GET /half HTTP/1.1\r\nHo").unwrap();
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let other = get(addr, "/other");
    assert_eq!(other.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the only worker was held by a half-sent request ({:?})",
        started.elapsed()
    );
    // The first connection's request completes and is served.
    w.write_all(b"st: t\r\n\r\n").unwrap();
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.text().starts_with("GET /half"));
    server.stop();
}
