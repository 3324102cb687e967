//! The request head parser and the chunked-body decoder (`http::server::parse`), pure: the
//! head's invariants, and the decoder gives the same result however its input is cut.
#![no_main]

use latchkey::http::server::fuzzing::{decode_chunked, parse_head};
use latchkey_fuzz::{options, seed_and_rest, segments};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (seed, data) = seed_and_rest(data);
    let opts = options(seed);

    match parse_head(data, &opts) {
        Ok(Some((head, used))) => {
            assert!(used <= data.len() && used <= opts.max_header_bytes);
            assert!(head.headers.len() <= opts.max_headers);
            if let Some(Some(n)) = head.body {
                assert!(n > 0 && n <= opts.max_body_bytes);
            }
            assert!(!(head.http10 && head.expect_continue));
            // A complete head parses the same with anything after it.
            let (again, used2) = parse_head(&data[..used], &opts).unwrap().unwrap();
            assert_eq!((again, used2), (head, used));
        }
        Ok(None) => {}
        Err(status) => assert!(matches!(status, 400 | 413 | 431), "{status}"),
    }

    let whole = decode_chunked(&[data], &opts);
    let cut = decode_chunked(&segments(seed, data), &opts);
    assert!(whole.body.len() as u64 <= opts.max_body_bytes);
    if let Err(status) = whole.result {
        assert!(matches!(status, 400 | 413 | 431), "{status}");
    }
    assert_eq!(whole, cut, "the decoder depends on how its input is cut");
});
