//! `/metrics` over real HTTP, parsed as Prometheus text.

mod common;
use common::TestServer;
use std::collections::HashMap;

/// Parses the exposition into sample name{labels} → value, checking every line's shape.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "{line}"
            );
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let name_end = key.find('{').unwrap_or(key.len());
        assert!(
            key[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if name_end < key.len() {
            assert!(key.ends_with('}'), "{line}");
        }
        out.insert(key.to_string(), v);
    }
    out
}

#[test]
fn metrics_count_requests_by_route_and_expose_gauges() {
    let mut s = TestServer::start();
    s.get("/healthz");
    s.get("/healthz");
    s.admin_get("/api/v1/admin/orgs/nope-org");
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
    let m = parse(&String::from_utf8(r.body).unwrap());
    assert_eq!(
        m["latchkey_http_requests_total{route=\"/healthz\",status=\"200\"}"],
        2.0
    );
    assert_eq!(
        m["latchkey_http_requests_total{route=\"/api/v1/admin/orgs/{slug}\",status=\"404\"}"],
        1.0
    );
    assert!(m["latchkey_http_request_duration_seconds_count"] >= 3.0);
    assert_eq!(
        m["latchkey_http_request_duration_seconds_bucket{le=\"+Inf\"}"],
        m["latchkey_http_request_duration_seconds_count"]
    );
    for g in [
        "latchkey_active_sessions",
        "latchkey_password_hash_queue_depth",
        "latchkey_outbox_pending",
        "latchkey_outbox_oldest_pending_age_seconds",
        "latchkey_logins_total{result=\"success\"}",
        "latchkey_logins_total{result=\"failure\"}",
        "latchkey_outbox_deliveries{status=\"failed\"}",
    ] {
        assert!(m.contains_key(g), "{g} missing");
    }
}
