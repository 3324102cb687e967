//! A webhook receiver for tests: HTTP/1.1 with keep-alive on 127.0.0.1, answering a scripted
//! status after an optional delay, keeping every request it got.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Got {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no header {name}"))
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub got: Arc<(Mutex<Vec<Got>>, Condvar)>,
    /// Statuses to answer first, in order; then `status`.
    pub script: Arc<Mutex<Vec<u16>>>,
    pub status: Arc<AtomicU16>,
    pub delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Receiver {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            got: Arc::new((Mutex::new(Vec::new()), Condvar::new())),
            script: Arc::new(Mutex::new(Vec::new())),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU64::new(0)),
        };
        let r2 = r.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let r = r2.clone();
                std::thread::spawn(move || r.serve(conn));
            }
        });
        r
    }

    fn serve(&self, conn: TcpStream) {
        let mut w = conn.try_clone().unwrap();
        let mut rd = BufReader::new(conn);
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if rd.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if rd.read_exact(&mut body).is_err() {
                return;
            }
            {
                let (lock, cv) = &*self.got;
                lock.lock().unwrap().push(Got { headers, body });
                cv.notify_all();
            }
            let status = {
                let mut s = self.script.lock().unwrap();
                if s.is_empty() {
                    self.status.load(Ordering::SeqCst)
                } else {
                    s.remove(0)
                }
            };
            std::thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)));
            let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
            if w.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    }

    pub fn all(&self) -> Vec<Got> {
        self.got.0.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.got.0.lock().unwrap().len()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Got> {
        let (lock, cv) = &*self.got;
        let deadline = Instant::now() + timeout;
        let mut g = lock.lock().unwrap();
        while g.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {n} requests; got {}",
                g.len()
            );
            g = cv.wait_timeout(g, left).unwrap().0;
        }
        g.clone()
    }
}
