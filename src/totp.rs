//! TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps) with ±1 step of drift and a replay
//! guard, otpauth:// URIs and QR codes for enrollment, and single-use backup codes.

use crate::crypto;

pub const STEP_SECS: u64 = 30;
pub const DIGITS: u32 = 6;
/// Secret length in bytes (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

/// The code for time step `step`.
pub fn code_at_step(secret: &[u8], step: u64) -> String {
    totp_lite::totp_custom::<totp_lite::Sha1>(STEP_SECS, DIGITS, secret, step * STEP_SECS)
}

/// Checks `code` at `now_secs` ±1 step, refusing any step at or before `last_used_step`
/// (a code accepted once is never accepted again). Returns the matched step.
pub fn verify(
    secret: &[u8],
    code: &str,
    now_secs: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now_step = now_secs.max(0) / STEP_SECS as i64;
    let mut matched = None;
    // Check every candidate (no early exit) so timing does not reveal which step matched.
    for step in [now_step - 1, now_step, now_step + 1] {
        if step < 0 {
            continue;
        }
        let expected = code_at_step(secret, step as u64);
        if crypto::ct_eq(expected.as_bytes(), code.as_bytes())
            && last_used_step.is_none_or(|last| step > last)
        {
            matched = Some(step);
        }
    }
    matched
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, no padding (what authenticator apps expect in `secret=`).
pub fn base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(B32[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(B32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// `otpauth://totp/Issuer:account?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_url(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        pct(issuer),
        pct(account),
        base32(secret),
        pct(issuer)
    )
}

/// The URL as an SVG QR code.
pub fn qr_svg(url: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

const BACKUP_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Ten backup codes `xxxx-xxxx` (~40 bits each, no look-alike characters).
pub fn new_backup_codes() -> Vec<String> {
    (0..10)
        .map(|_| {
            let raw: String = crypto::random_bytes(8)
                .iter()
                .map(|b| BACKUP_ALPHABET[*b as usize % BACKUP_ALPHABET.len()] as char)
                .collect();
            format!("{}-{}", &raw[..4], &raw[4..])
        })
        .collect()
}

/// How a backup code is stored: normalised (lower case, no dash or spaces), then hashed.
pub fn backup_code_hash(code: &str) -> String {
    let norm: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    crypto::token_hash(&format!("backup:{norm}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 (8-digit vectors; the 6-digit code is their last 6 digits).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, code8) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let eight = totp_lite::totp_custom::<totp_lite::Sha1>(30, 8, secret, t);
            assert_eq!(eight, code8, "t={t}");
            assert_eq!(code_at_step(secret, t / 30), code8[2..], "t={t}");
        }
    }

    #[test]
    fn drift_and_replay() {
        let s = b"12345678901234567890";
        let now = 1_111_111_111i64;
        let step = now / 30;
        let prev = code_at_step(s, (step - 1) as u64);
        let next = code_at_step(s, (step + 1) as u64);
        let far = code_at_step(s, (step + 2) as u64);
        assert_eq!(verify(s, &prev, now, None), Some(step - 1));
        assert_eq!(verify(s, &next, now, None), Some(step + 1));
        assert_eq!(verify(s, &far, now, None), None);
        assert_eq!(
            verify(s, &prev, now, Some(step - 1)),
            None,
            "replay refused"
        );
        assert_eq!(verify(s, "12345", now, None), None);
        assert_eq!(verify(s, "abcdef", now, None), None);
    }

    #[test]
    fn base32_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn otpauth_and_qr() {
        let url = otpauth_url("Acme Corp", "ann@acme.test", b"12345678901234567890");
        assert!(url.starts_with("otpauth://totp/Acme%20Corp:ann%40acme.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp"));
        assert!(qr_svg(&url).starts_with("<?xml"));
    }

    #[test]
    fn backup_codes_normalise() {
        let codes = new_backup_codes();
        assert_eq!(codes.len(), 10);
        let c = &codes[0];
        assert_eq!(
            backup_code_hash(c),
            backup_code_hash(&c.to_uppercase().replace('-', " "))
        );
    }
}
