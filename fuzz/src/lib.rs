//! Helpers shared by the fuzz targets: splitting one input into the pieces a target needs.

/// Cuts `data` into segments at points chosen by `seed`, so one input also says how the bytes
/// arrive (as reads from a socket would cut them). Deterministic: the same input, the same cut.
pub fn segments(seed: u64, data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut x = seed | 1;
    let mut rest = data;
    while !rest.is_empty() {
        // xorshift64: cheap and good enough to vary the cuts.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Mostly short pieces (1–16 bytes), sometimes long ones.
        let n = if x.is_multiple_of(4) {
            (x >> 8) % 4096
        } else {
            (x >> 8) % 16
        } as usize
            + 1;
        let n = n.min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// The first 8 bytes as a seed, and the rest (fewer than 8 bytes: seed 0, all of it).
pub fn seed_and_rest(data: &[u8]) -> (u64, &[u8]) {
    match data.split_first_chunk::<8>() {
        Some((s, rest)) => (u64::from_le_bytes(*s), rest),
        None => (0, data),
    }
}

/// Splits `data` at each `sep` byte into at most `n` fields (the last keeps any further
/// separators); missing fields are empty.
pub fn fields(data: &[u8], sep: u8, n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |b| *b == sep).collect();
    out.resize(n, &[]);
    out
}

/// The connection layer's limits for one input: small ones half the time (by `seed`), so the
/// limits themselves are reached, else the defaults.
pub fn options(seed: u64) -> latchkey::http::server::ServerOptions {
    use latchkey::http::server::ServerOptions;
    if seed & 0x100 == 0 {
        ServerOptions {
            max_header_bytes: 512,
            max_headers: 8,
            max_body_bytes: 256,
            ..ServerOptions::default()
        }
    } else {
        ServerOptions::default()
    }
}
