//! Pure parsing, no I/O: the request head (httparse, framing and connection rules, limits) and
//! the incremental chunked-body decoder.

use super::ServerOptions;
use super::read::reserve_capped;
use super::write::HttpError;

/// Longest accepted chunk-size line (size + extensions).
const MAX_CHUNK_LINE: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading trailer lines; bytes seen so far.
    Trailer(usize),
}

#[derive(Debug)]
pub(super) struct Head {
    pub(super) method: String,
    pub(super) url: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) http10: bool,
    pub(super) keep_alive: bool,
    pub(super) expect_continue: bool,
    pub(super) body: BodyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// Parses a request head from the start of `buf`: `Ok(None)` if incomplete.
pub(super) fn parse_head(
    buf: &[u8],
    opts: &ServerOptions,
) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; opts.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(used)) => {
            if used > opts.max_header_bytes {
                return Err(HttpError::HeadersTooLarge);
            }
            build_head(&req, opts).map(|h| Some((h, used)))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadersTooLarge),
        Err(_) => Err(HttpError::BadRequest("Malformed HTTP request")),
    }
}

pub(super) fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn parse_content_length(v: &str) -> Result<u64, HttpError> {
    let bad = HttpError::BadRequest("Invalid Content-Length");
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    v.parse().map_err(|_| bad)
}

fn build_head(req: &httparse::Request, opts: &ServerOptions) -> Result<Head, HttpError> {
    let malformed = HttpError::BadRequest("Malformed HTTP request");
    let method = req.method.ok_or(malformed)?.to_string();
    let url = req.path.ok_or(malformed)?.to_string();
    let http10 = match req.version {
        Some(0) => true,
        Some(1) => false,
        _ => return Err(malformed),
    };
    let mut content_length: Option<u64> = None;
    let mut te_seen = false;
    let mut chunked = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(&value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(HttpError::BadRequest("Conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te_seen = true;
            for coding in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if chunked || !coding.eq_ignore_ascii_case("chunked") {
                    return Err(HttpError::BadRequest("Unsupported Transfer-Encoding"));
                }
                chunked = true;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            conn_close |= has_token(&value, "close");
            conn_keep_alive |= has_token(&value, "keep-alive");
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue |= value.eq_ignore_ascii_case("100-continue");
        }
        headers.push((h.name.to_string(), value));
    }
    if te_seen && content_length.is_some() {
        return Err(HttpError::BadRequest(
            "Both Content-Length and Transfer-Encoding present",
        ));
    }
    if te_seen && !chunked {
        return Err(HttpError::BadRequest("Unsupported Transfer-Encoding"));
    }
    let body = if chunked {
        BodyKind::Chunked
    } else {
        match content_length {
            None | Some(0) => BodyKind::None,
            Some(n) if n > opts.max_body_bytes => return Err(HttpError::PayloadTooLarge),
            Some(n) => BodyKind::Length(n),
        }
    };
    let keep_alive = if http10 {
        conn_keep_alive && !conn_close
    } else {
        !conn_close
    };
    Ok(Head {
        method,
        url,
        headers,
        http10,
        keep_alive,
        expect_continue: expect_continue && !http10 && body != BodyKind::None,
        body,
    })
}

fn find_lf(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses a chunk-size line (`1a;ext=1`). `None` if malformed.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = strip_cr(line);
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = &line[digits..];
    let rest_trimmed = rest.trim_ascii_start();
    if !rest_trimmed.is_empty() && rest_trimmed[0] != b';' {
        return None;
    }
    let hex = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

/// Decodes as much chunked data from `buf` as possible into `body`, consuming it from `buf`.
/// `Ok(true)` once the last chunk and trailers are read. Never lets `body` exceed the limit.
pub(super) fn decode_chunked(
    state: &mut ChunkState,
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
    opts: &ServerOptions,
) -> Result<bool, HttpError> {
    let bad = HttpError::BadRequest("Malformed chunked body");
    let mut pos = 0;
    let result = loop {
        let rest = &buf[pos..];
        match *state {
            ChunkState::Size => {
                let Some(i) = find_lf(rest) else {
                    if rest.len() > MAX_CHUNK_LINE {
                        break Err(bad);
                    }
                    break Ok(false);
                };
                if i > MAX_CHUNK_LINE {
                    break Err(bad);
                }
                let Some(size) = parse_chunk_size(&rest[..i]) else {
                    break Err(bad);
                };
                pos += i + 1;
                if size == 0 {
                    *state = ChunkState::Trailer(0);
                } else if size > opts.max_body_bytes.saturating_sub(body.len() as u64) {
                    break Err(HttpError::PayloadTooLarge);
                } else {
                    *state = ChunkState::Data(size);
                }
            }
            ChunkState::Data(left) => {
                if rest.is_empty() {
                    break Ok(false);
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                let cap = usize::try_from(opts.max_body_bytes).unwrap_or(usize::MAX);
                reserve_capped(body, take, cap);
                body.extend_from_slice(&rest[..take]);
                pos += take;
                let left = left - take as u64;
                *state = if left == 0 {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(left)
                };
            }
            ChunkState::DataEnd => match rest {
                [] | [b'\r'] => break Ok(false),
                [b'\n', ..] => {
                    pos += 1;
                    *state = ChunkState::Size;
                }
                [b'\r', b'\n', ..] => {
                    pos += 2;
                    *state = ChunkState::Size;
                }
                _ => break Err(bad),
            },
            ChunkState::Trailer(seen) => {
                let Some(i) = find_lf(rest) else {
                    if seen + rest.len() > opts.max_header_bytes {
                        break Err(HttpError::HeadersTooLarge);
                    }
                    break Ok(false);
                };
                let line = strip_cr(&rest[..i]);
                pos += i + 1;
                if line.is_empty() {
                    break Ok(true);
                }
                let seen = seen + i + 1;
                if seen > opts.max_header_bytes {
                    break Err(HttpError::HeadersTooLarge);
                }
                *state = ChunkState::Trailer(seen);
            }
        }
    };
    buf.drain(..pos);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(max_body: u64) -> ServerOptions {
        ServerOptions {
            max_body_bytes: max_body,
            ..ServerOptions::default()
        }
    }

    #[test]
    fn chunked_decoder_handles_any_split() {
        let input =
            b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..input.len() {
            let mut state = ChunkState::Size;
            let mut buf = input[..split].to_vec();
            let mut body = Vec::new();
            let mut done = decode_chunked(&mut state, &mut buf, &mut body, &opts(1024)).unwrap();
            buf.extend_from_slice(&input[split..]);
            if !done {
                done = decode_chunked(&mut state, &mut buf, &mut body, &opts(1024)).unwrap();
            }
            assert!(done, "split {split}");
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(buf, b"NEXT");
        }
    }

    #[test]
    fn chunked_decoder_enforces_limits_and_syntax() {
        let mut state = ChunkState::Size;
        let mut body = Vec::new();
        let mut buf = b"10\r\n".to_vec();
        assert_eq!(
            decode_chunked(&mut state, &mut buf, &mut body, &opts(8)),
            Err(HttpError::PayloadTooLarge)
        );
        for bad in [&b"zz\r\n"[..], b"4\r\nabcdXY", b"ffffffffffffffffff\r\n"] {
            let mut state = ChunkState::Size;
            let mut buf = bad.to_vec();
            assert!(matches!(
                decode_chunked(&mut state, &mut buf, &mut Vec::new(), &opts(1 << 20)),
                Err(HttpError::BadRequest(_) | HttpError::PayloadTooLarge)
            ));
        }
    }

    #[test]
    fn head_parsing_rules() {
        let o = opts(100);
        let parse = |s: &str| parse_head(s.as_bytes(), &o);
        let (h, _) = parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert!(h.keep_alive && !h.http10 && h.body == BodyKind::None);
        let (h, _) = parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let (h, _) = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let (h, _) = parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n").err(),
            Some(HttpError::PayloadTooLarge)
        );
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
        assert!(matches!(
            parse("\x01\x02 garbage\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
    }
}
