//! Pagination cursors (`cursor.rs`): decoding any string is a value or a 400, never a panic;
//! what `encode` makes decodes to what it was made of; an edited cursor is refused.
#![no_main]

use latchkey::cursor;
use latchkey_fuzz::seed_and_rest;
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let (seed, rest) = seed_and_rest(data);
    let text = String::from_utf8_lossy(data);
    if let Err(e) = cursor::decode(&KEY, &text) {
        assert_eq!(e.status(), 400);
    }
    // As a query parameter, percent-encoded or not.
    let mut url = String::from("/x?cursor=");
    for b in data {
        url.push_str(&format!("%{b:02X}"));
    }
    let req = rouille::Request::fake_http("GET", url, vec![], vec![]);
    let _ = cursor::from_query(&KEY, &req);
    let raw = format!("/x?cursor={text}&limit=1");
    let req = rouille::Request::fake_http("GET", raw, vec![], vec![]);
    let _ = cursor::from_query(&KEY, &req);

    // Round trip, for any position.
    let at = seed as i64;
    let id = String::from_utf8_lossy(rest);
    let c = cursor::encode(&KEY, at, &id);
    assert_eq!(cursor::decode(&KEY, &c).unwrap(), (at, id.to_string()));
    // Flipping any one character of it is refused (or decodes to the same position).
    if !c.is_empty() {
        let i = (seed >> 32) as usize % c.len();
        let mut edited = c.clone().into_bytes();
        edited[i] = if edited[i] == b'A' { b'B' } else { b'A' };
        if let Ok(edited) = String::from_utf8(edited)
            && let Ok(pos) = cursor::decode(&KEY, &edited)
        {
            assert_eq!(pos, (at, id.to_string()), "an edited cursor was accepted");
        }
    }
});
