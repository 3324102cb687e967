//! Reading requests: JSON bodies through the size limit (415 / 413 / 400 naming the field),
//! query parameters, bearer credentials and the client's address.

use crate::error::{ApiError, ApiResult, ErrorCode};
use rouille::Request;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::io::Read;
use std::net::IpAddr;

/// `application/json` or `application/<anything>+json`, any case, parameters ignored. Compares
/// bytes: the header is decoded lossily, so a byte offset may fall inside a character.
fn is_json(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .as_bytes();
    media.eq_ignore_ascii_case(b"application/json")
        || (media
            .get(..12)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"application/"))
            && media[media.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

/// The raw body, at most `limit` bytes (413 past it).
pub fn body_bytes(req: &Request, limit: u64) -> ApiResult<Vec<u8>> {
    let Some(data) = req.data() else {
        return Ok(Vec::new());
    };
    let mut buf = Vec::new();
    data.take(limit + 1).read_to_end(&mut buf).map_err(|e| {
        ApiError::invalid_request("Could not read the request body").with_detail(e.to_string())
    })?;
    if buf.len() as u64 > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    Ok(buf)
}

/// Parses a required JSON body into `T`.
pub fn json<T: DeserializeOwned>(req: &Request, limit: u64) -> ApiResult<T> {
    match req.header("Content-Type") {
        Some(ct) if is_json(ct) => {}
        _ => return Err(ApiError::unsupported_media_type()),
    }
    let bytes = body_bytes(req, limit)?;
    parse_json(&bytes)
}

/// Like [`json`], but an absent body (no Content-Type and no bytes) gives `T::default()`.
pub fn json_or_default<T: DeserializeOwned + Default>(req: &Request, limit: u64) -> ApiResult<T> {
    if req.header("Content-Type").is_none() {
        let bytes = body_bytes(req, limit)?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(T::default());
        }
        return Err(ApiError::unsupported_media_type());
    }
    match req.header("Content-Type") {
        Some(ct) if is_json(ct) => {}
        _ => return Err(ApiError::unsupported_media_type()),
    }
    let bytes = body_bytes(req, limit)?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    parse_json(&bytes)
}

/// JSON text → `T`, with errors that name the field: malformed JSON, a missing field, a
/// wrong type, an unknown field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::invalid_request(
            "Request body is empty; expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(e) => return Err(json_error(e)),
    };
    de.end().map_err(|_| {
        ApiError::invalid_request("Malformed JSON: trailing characters after the value")
    })?;
    Ok(value)
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    use serde_json::error::Category;
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::invalid_request(format!(
            "Malformed JSON at line {} column {}",
            inner.line(),
            inner.column()
        )),
        Category::Data => {
            let msg = inner.to_string();
            // Strip serde_json's " at line X column Y" suffix.
            let msg = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            let named = |prefix: &str| -> Option<String> {
                let rest = msg.strip_prefix(prefix)?;
                let rest = rest.strip_prefix('`')?;
                Some(rest[..rest.find('`')?].to_string())
            };
            let join = |field: String| {
                if path == "." || path.is_empty() {
                    field
                } else {
                    format!("{path}.{field}")
                }
            };
            if let Some(f) = named("missing field ") {
                ApiError::field(ErrorCode::InvalidRequest, &join(f), "is required")
            } else if let Some(f) = named("unknown field ") {
                // The path already ends at the unknown field.
                let field = if path.ends_with(&f) {
                    path.clone()
                } else {
                    join(f)
                };
                ApiError::field(ErrorCode::InvalidRequest, &field, "is not a known field")
            } else if path == "." || path.is_empty() {
                ApiError::invalid_request(format!("Request body: {msg}"))
            } else {
                ApiError::field(ErrorCode::InvalidRequest, &path, msg)
            }
        }
    }
}

/// A query-string parameter, percent-decoded (`None` if absent).
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.get_param(name)
}

/// An integer query parameter within `min..=max`, or `default` when absent; 400 otherwise.
pub fn query_int(req: &Request, name: &str, default: i64, min: i64, max: i64) -> ApiResult<i64> {
    match req.get_param(name) {
        None => Ok(default),
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                ErrorCode::InvalidRequest,
                name,
                format!("must be an integer from {min} to {max}"),
            )),
        },
    }
}

/// The credential of `Authorization: Bearer <token>`, if present.
pub fn bearer(req: &Request) -> Option<&str> {
    let h = req.header("Authorization")?;
    let (scheme, rest) = h.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        let t = rest.trim();
        (!t.is_empty()).then_some(t)
    } else {
        None
    }
}

/// The client's address: the socket peer, or — when the peer is a trusted proxy — the
/// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(req: &Request, trusted: &[IpAddr]) -> IpAddr {
    let peer = req.remote_addr().ip();
    if !trusted.contains(&peer) {
        return peer;
    }
    let Some(xff) = req.header("X-Forwarded-For") else {
        return peer;
    };
    for part in xff.rsplit(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

/// Value of cookie `name` from the `Cookie` header.
pub fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    let header = req.header("Cookie")?;
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// User-Agent, truncated to 512 bytes on a character boundary.
pub fn user_agent(req: &Request) -> Option<String> {
    let ua = req.header("User-Agent")?;
    let mut end = ua.len().min(512);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    Some(ua[..end].to_string())
}

/// For `#[serde(default, deserialize_with = "nullable")]`: tells an absent field (`None`) from
/// an explicit `null` (`Some(None)`), so PUT can clear a value.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_media_types_compare_bytes() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/problem+json ",
            "application/+json",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        // The issue-18 panic: the lossily decoded header has a multi-byte character at byte 11.
        let lossy = String::from_utf8_lossy(b"application\xff\xfe/json");
        for no in [
            "",
            "json",
            "application/",
            "application/xml",
            "text/json",
            "application+json",
            lossy.as_ref(),
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}+json",
            "applicatio\u{e9}/x+json",
        ] {
            assert!(!is_json(no), "{no:?}");
        }
    }
}
