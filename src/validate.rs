//! Input rules shared by handlers: emails, org slugs, URLs, names, roles.

use crate::error::{ApiError, ApiResult, ErrorCode};

/// Trims and lower-cases an email and checks its shape; 400 `invalid_email` otherwise.
pub fn email(raw: &str) -> ApiResult<String> {
    let e = raw.trim().to_ascii_lowercase();
    let bad = || {
        ApiError::field(
            ErrorCode::InvalidEmail,
            "email",
            "is not a valid email address",
        )
    };
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    {
        return Err(bad());
    }
    Ok(e)
}

const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "apps",
    "assets",
    "auth",
    "billing",
    "dashboard",
    "default",
    "docs",
    "help",
    "healthz",
    "internal",
    "invitations",
    "latchkey",
    "login",
    "logout",
    "me",
    "metrics",
    "new",
    "null",
    "org",
    "orgs",
    "public",
    "readyz",
    "root",
    "settings",
    "signup",
    "static",
    "status",
    "support",
    "system",
    "undefined",
    "well-known",
    "www",
];

/// `^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$`, not a reserved word.
pub fn slug(s: &str) -> ApiResult<()> {
    let b = s.as_bytes();
    let ok_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let shape = (3..=64).contains(&b.len())
        && ok_char(&b[0])
        && ok_char(&b[b.len() - 1])
        && b.iter().all(|c| ok_char(c) || *c == b'-');
    if !shape {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "slug",
            "must be 3-64 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
        ));
    }
    if RESERVED_SLUGS.contains(&s) {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "slug",
            "is a reserved word",
        ));
    }
    Ok(())
}

/// An absolute http(s) URL of sane length.
pub fn http_url(field: &str, s: &str) -> ApiResult<()> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    let ok = s.len() <= 2048
        && rest.is_some_and(|r| {
            // Host (and optional port) in ASCII: internationalised names go in their
            // punycode form, so links built from the URL are what they look like.
            let host = r.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
                && !r.chars().any(|c| c.is_whitespace() || c.is_control())
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            ErrorCode::InvalidRequest,
            field,
            "must be an http:// or https:// URL",
        ))
    }
}

/// A display name: 1..=200 characters, no control characters.
pub fn name(field: &str, s: &str) -> ApiResult<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(|c| c.is_control()) {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            field,
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(t.to_string())
}

pub fn org_role(field: &str, s: &str) -> ApiResult<()> {
    match crate::role::Role::parse(s) {
        Some(_) => Ok(()),
        None => Err(ApiError::field(
            ErrorCode::InvalidRequest,
            field,
            "must be one of owner, org_admin, member",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(slug("acme-corp").is_ok());
        assert!(slug("a1b").is_ok());
        assert!(slug("ab").is_err());
        assert!(slug("-abc").is_err());
        assert!(slug("abc-").is_err());
        assert!(slug("Acme").is_err());
        assert!(slug("admin").is_err());
        assert!(slug(&"a".repeat(65)).is_err());
        assert!(slug(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn urls() {
        assert!(http_url("u", "https://app.acme.test/x?y=1").is_ok());
        assert!(http_url("u", "http://127.0.0.1:3000").is_ok());
        assert!(http_url("u", "https://xn--bcher-kva.example/").is_ok());
        for bad in [
            "ftp://x.test",
            "https://",
            "https://bücher.example/",
            "https://a b.test",
            "javascript:alert(1)",
            "https://user@host/",
        ] {
            assert!(http_url("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(email(" Bob@Example.COM ").unwrap(), "bob@example.com");
        for bad in [
            "",
            "a",
            "a@b",
            "@b.com",
            "a b@c.com",
            "a@-b.com",
            "a@b..com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
