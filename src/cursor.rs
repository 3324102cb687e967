//! Opaque pagination cursors: a (timestamp, id) position, MAC'd with a key derived from the
//! deployment secret so a forged or edited cursor is refused with 400.

use crate::crypto;
use crate::error::{ApiError, ApiResult, ErrorCode};

pub fn encode(key: &[u8; 32], at: i64, id: &str) -> String {
    let body = format!("{at}:{id}");
    let mac = crypto::hmac_sha256(key, body.as_bytes());
    format!(
        "{}.{}",
        crypto::b64url(body.as_bytes()),
        crypto::b64url(&mac[..16])
    )
}

pub fn decode(key: &[u8; 32], cursor: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::field(ErrorCode::InvalidRequest, "cursor", "is not a valid cursor");
    let (body_b64, mac_b64) = cursor.split_once('.').ok_or_else(bad)?;
    let body = crypto::b64url_decode(body_b64).ok_or_else(bad)?;
    let mac = crypto::b64url_decode(mac_b64).ok_or_else(bad)?;
    let want = crypto::hmac_sha256(key, &body);
    if !crypto::ct_eq(&mac, &want[..16]) {
        return Err(bad());
    }
    let body = String::from_utf8(body).map_err(|_| bad())?;
    let (at, id) = body.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_string()))
}

/// The `cursor` query parameter of a list request, decoded; `None` when absent or empty.
pub fn from_query(key: &[u8; 32], req: &rouille::Request) -> ApiResult<Option<(i64, String)>> {
    match req.get_param("cursor") {
        Some(c) if !c.is_empty() => Ok(Some(decode(key, &c)?)),
        _ => Ok(None),
    }
}

/// Cuts `rows`, fetched with `limit + 1`, to `limit`; returns the cursor of the next page if
/// there was one more row. `position` gives a row's (time, id) sort key.
pub fn next_page<T>(
    key: &[u8; 32],
    rows: &mut Vec<T>,
    limit: i64,
    position: impl Fn(&T) -> (i64, &str),
) -> Option<String> {
    if rows.len() as i64 <= limit {
        return None;
    }
    rows.truncate(limit as usize);
    rows.last().map(|r| {
        let (at, id) = position(r);
        encode(key, at, id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_forgery() {
        let k = [7u8; 32];
        let c = encode(&k, 123, "org_X");
        assert_eq!(decode(&k, &c).unwrap(), (123, "org_X".to_string()));
        let forged = encode(&[8u8; 32], 1, "org_Y");
        assert!(decode(&k, &forged).is_err());
        assert!(decode(&k, "garbage").is_err());
        let (b, m) = c.split_once('.').unwrap();
        let edited = format!("{}.{m}", crypto::b64url(b"999:org_X"));
        assert!(decode(&k, &edited).is_err() && b != crypto::b64url(b"999:org_X"));
    }
}
