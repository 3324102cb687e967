//! The connection's request state machine (`http::server::read`, the code a worker runs)
//! over an in-memory socket: the same requests come out however the bytes are cut into reads,
//! every limit holds, and the body reader of the handlers (`http::input::body_bytes`, `json`)
//! keeps its own limit on what comes out.
#![no_main]

use latchkey::http::input;
use latchkey::http::server::fuzzing::{Outcome, read_connection};
use latchkey_fuzz::{options, seed_and_rest, segments};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (seed, data) = seed_and_rest(data);
    let opts = options(seed);
    let (whole, _) = read_connection(&[data], &opts);
    let (cut, _) = read_connection(&segments(seed, data), &opts);

    let requests = |o: &[Outcome]| -> Vec<Outcome> {
        o.iter()
            .filter(|x| matches!(x, Outcome::Request { .. }))
            .cloned()
            .collect()
    };
    assert_eq!(
        requests(&whole),
        requests(&cut),
        "requests depend on how the bytes arrive"
    );
    match (whole.last(), cut.last()) {
        (Some(Outcome::Eof), Some(Outcome::Eof)) => {}
        (Some(Outcome::Refused(a)), Some(Outcome::Refused(b))) => {
            for s in [a, b] {
                assert!(matches!(s, 400 | 408 | 413 | 431), "{s}");
            }
        }
        other => panic!("the connection ends differently: {other:?}"),
    }

    let limit = (seed >> 16) % 300;
    let peer = "127.0.0.1:9".parse().unwrap();
    for o in whole {
        let Outcome::Request { head, body } = o else {
            continue;
        };
        assert!(body.len() as u64 <= opts.max_body_bytes);
        if let Some(Some(n)) = head.body {
            assert_eq!(body.len() as u64, n);
        }
        let req = || {
            rouille::Request::fake_http_from(
                peer,
                head.method.clone(),
                head.url.clone(),
                head.headers.clone(),
                body.clone(),
            )
        };
        match input::body_bytes(&req(), limit) {
            Ok(b) => assert!(b == body && b.len() as u64 <= limit),
            Err(e) => assert!(e.status() == 413 && body.len() as u64 > limit),
        }
        if let Err(e) = input::json::<serde_json::Value>(&req(), limit) {
            assert!(matches!(e.status(), 400 | 413 | 415), "{}", e.status());
        }
        if let Err(e) = input::json_or_default::<serde_json::Value>(&req(), limit) {
            assert!(matches!(e.status(), 400 | 413 | 415), "{}", e.status());
        }
    }
});
