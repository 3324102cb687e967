//! The OAuth 2.1 / OpenID Connect provider (API.md §13, docs/oidc.md): what its endpoints
//! share — RFC 6749 errors, form bodies, client authentication, scopes, and issuing a token
//! set (an org session made for the client, its access token, an RS256 id_token). The browser
//! endpoints (`/oauth2/authorize`, `/device`, `/oauth2/logout`) are hosted pages (`ui::oauth`);
//! the back-channel ones are in [`token`] and [`endpoints`].

pub mod endpoints;
pub mod token;

use crate::api::Ctx;
use crate::change::Change;
use crate::crypto;
use crate::db::oauth::{self, Client, OauthSession};
use crate::db::orgs::Org;
use crate::db::users::{Membership, User};
use crate::error::{ApiError, ApiResult};
use crate::http::input;
use crate::session::Issued;
use crate::state::AppState;
use rouille::{Request, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The scopes Latchkey knows; others a client asks for are dropped from the grant.
pub const SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];
/// How long an authorization code may be spent (once).
pub const CODE_TTL_MS: i64 = 60_000;
/// Device codes: lifetime and the least poll interval.
pub const DEVICE_TTL_MS: i64 = 600_000;
pub const DEVICE_INTERVAL_MS: i64 = 5_000;
/// The prefix of client secrets (the WorkOS profile's `sk_…` API key is the same secret).
pub const SECRET_PREFIX: &str = "sk_";

pub const GRANT_CODE: &str = "authorization_code";
pub const GRANT_REFRESH: &str = "refresh_token";
pub const GRANT_DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// An RFC 6749 error answer (`{error, error_description}`), or an internal failure that the
/// pipeline logs and answers as a 500.
pub enum OauthError {
    Oauth {
        status: u16,
        error: &'static str,
        description: String,
        /// `WWW-Authenticate` (401 answers).
        challenge: Option<String>,
    },
    Internal(ApiError),
}

pub type OauthResult<T> = Result<T, OauthError>;

impl OauthError {
    pub fn new(status: u16, error: &'static str, description: impl Into<String>) -> OauthError {
        OauthError::Oauth {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> OauthError {
        OauthError::new(400, "invalid_request", d)
    }

    pub fn invalid_grant(d: impl Into<String>) -> OauthError {
        OauthError::new(400, "invalid_grant", d)
    }

    pub fn invalid_client(basic: bool) -> OauthError {
        OauthError::Oauth {
            status: 401,
            error: "invalid_client",
            description: "Client authentication failed".into(),
            challenge: basic.then(|| "Basic realm=\"latchkey\"".to_string()),
        }
    }

    pub fn invalid_token(d: impl Into<String>) -> OauthError {
        let description = d.into();
        OauthError::Oauth {
            status: 401,
            error: "invalid_token",
            challenge: Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                description.replace('"', "'")
            )),
            description,
        }
    }

    /// The answer: the RFC 6749 body (never cached), or the internal error for the pipeline.
    pub fn into_response(self) -> Result<Response, ApiError> {
        match self {
            OauthError::Oauth {
                status,
                error,
                description,
                challenge,
            } => {
                let mut r =
                    Response::json(&json!({ "error": error, "error_description": description }))
                        .with_status_code(status);
                if let Some(c) = challenge {
                    r.headers.push(("WWW-Authenticate".into(), c.into()));
                }
                no_store(&mut r);
                Ok(r)
            }
            OauthError::Internal(e) => Err(e),
        }
    }
}

impl From<ApiError> for OauthError {
    fn from(e: ApiError) -> OauthError {
        match e.status() {
            429 => OauthError::Oauth {
                status: 429,
                error: "slow_down",
                description: e.message,
                challenge: None,
            },
            s if s >= 500 => OauthError::Internal(e),
            // A rule of the JSON API that refused (e.g. a disabled account): no grant.
            s => OauthError::new(if s == 401 { 400 } else { s }, "invalid_grant", e.message),
        }
    }
}

impl From<crate::db::Error> for OauthError {
    fn from(e: crate::db::Error) -> OauthError {
        OauthError::Internal(e.into())
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, as RFC 6749 §5.1 asks of token answers.
pub fn no_store(r: &mut Response) {
    crate::http::respond::set_header(r, "Cache-Control", "no-store");
    crate::http::respond::set_header(r, "Pragma", "no-cache");
}

/// A JSON answer that is never cached.
pub fn json_no_store(v: &Value) -> Response {
    let mut r = Response::json(v);
    no_store(&mut r);
    r
}

/// A form-encoded body (RFC 6749 §3.2): a parameter sent twice is an error; at most 64.
pub fn form(state: &AppState, req: &Request) -> OauthResult<HashMap<String, String>> {
    let ct = req.header("Content-Type").unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OauthError::new(
            415,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = input::body_bytes(req, state.config.server.max_body_bytes.min(64 * 1024))
        .map_err(|e| OauthError::new(e.status(), "invalid_request", e.message))?;
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&bytes) {
        if out.len() >= 64 {
            return Err(OauthError::invalid_request("too many parameters"));
        }
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(OauthError::invalid_request(format!(
                "the parameter {k} is repeated"
            )));
        }
    }
    Ok(out)
}

/// The client a back-channel request authenticates as: HTTP Basic (`client_secret_basic`),
/// `client_id` + `client_secret` in the body (`client_secret_post`), or `client_id` alone for a
/// public client (`none`, PKCE). Anything else is 401 `invalid_client`.
pub fn authenticate_client(
    state: &AppState,
    req: &Request,
    form: &HashMap<String, String>,
) -> OauthResult<Client> {
    let basic = req.header("Authorization").and_then(|h| {
        h.strip_prefix("Basic ")
            .or_else(|| h.strip_prefix("basic "))
    });
    let (id, secret, used_basic) = match basic {
        Some(b) => {
            let raw =
                crypto::b64_decode(b.trim()).ok_or_else(|| OauthError::invalid_client(true))?;
            let raw = String::from_utf8(raw).map_err(|_| OauthError::invalid_client(true))?;
            let (i, s) = raw
                .split_once(':')
                .ok_or_else(|| OauthError::invalid_client(true))?;
            // RFC 6749 §2.3.1: both halves are form-urlencoded.
            let dec = |v: &str| -> String {
                url::form_urlencoded::parse(format!("x={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            if form.contains_key("client_secret") {
                return Err(OauthError::invalid_request(
                    "use one client authentication method",
                ));
            }
            (dec(i), Some(dec(s)), true)
        }
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned(),
            false,
        ),
    };
    if id.is_empty() || id.len() > 128 {
        return Err(OauthError::invalid_client(used_basic));
    }
    if let Some(body_id) = form.get("client_id")
        && *body_id != id
    {
        return Err(OauthError::invalid_client(used_basic));
    }
    let client = state
        .db
        .read(|c| oauth::find_client(c, &id))?
        .ok_or_else(|| OauthError::invalid_client(used_basic))?;
    match (&client.secret_hash, secret) {
        (None, None) => Ok(client),
        (Some(hash), Some(s)) if s.len() <= 256 => {
            if crypto::ct_eq(crypto::token_hash(&s).as_bytes(), hash.as_bytes()) {
                Ok(client)
            } else {
                Err(OauthError::invalid_client(used_basic))
            }
        }
        _ => Err(OauthError::invalid_client(used_basic)),
    }
}

/// The granted scope: the known scopes asked for, in a stable order, space-separated.
pub fn grant_scope(requested: &str) -> String {
    let asked: Vec<&str> = requested.split_ascii_whitespace().collect();
    SCOPES
        .iter()
        .filter(|s| asked.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn has_scope(scope: &str, s: &str) -> bool {
    scope.split_ascii_whitespace().any(|x| x == s)
}

/// The S256 PKCE check (RFC 7636): `BASE64URL(SHA256(verifier)) == challenge`, verifier of
/// 43–128 unreserved characters.
pub fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed
        && crypto::ct_eq(
            crypto::b64url(&crypto::sha256(verifier.as_bytes())).as_bytes(),
            challenge.as_bytes(),
        )
}

/// The claims of a user the scope lets a client read (userinfo and the id_token).
pub fn user_claims(user: &User, org: &Org, membership: &Membership, scope: &str) -> Value {
    let mut c = json!({ "sub": user.id });
    if has_scope(scope, "profile") {
        // OIDC Core §5.3.2: a claim without a value is left out, never null.
        for (k, v) in [
            ("name", &user.name),
            ("given_name", &user.first_name),
            ("family_name", &user.last_name),
            ("picture", &user.avatar_url),
        ] {
            if let Some(v) = v {
                c[k] = json!(v);
            }
        }
        c["updated_at"] = json!(user.updated_at.div_euclid(1000));
    }
    if has_scope(scope, "email") {
        c["email"] = json!(user.email);
        c["email_verified"] = json!(user.email_verified);
    }
    c["org_id"] = json!(org.id);
    c["org_slug"] = json!(org.slug);
    c["org_role"] = json!(membership.role);
    c
}

/// What a grant hands out: who, in which org, with which scope, signed in when and how.
pub struct Grant<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub org: &'a Org,
    pub membership: &'a Membership,
    pub scope: &'a str,
    pub auth_time: i64,
    pub amr: &'a [String],
    pub nonce: Option<&'a str>,
    pub browser_session_id: Option<&'a str>,
}

/// Starts the org session of a grant inside the caller's unit of work (audited as a login
/// through the client, `user.login` announced) and records its OAuth facts.
pub fn start_session(
    tx: &Change,
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    g: &Grant<'_>,
) -> ApiResult<Issued> {
    let amr: Vec<&str> = g.amr.iter().map(String::as_str).collect();
    let issued = crate::session::login::finish_login_session(
        tx,
        state,
        ctx,
        req,
        g.user,
        g.org,
        g.membership,
        &amr,
    )?;
    crate::db::sessions::set_client(tx, &issued.session_id, &g.client.id)?;
    oauth::insert_session(
        tx,
        &issued.session_id,
        &OauthSession {
            client_id: g.client.id.clone(),
            scope: g.scope.to_string(),
            auth_time: g.auth_time,
            nonce: g.nonce.map(str::to_string),
        },
    )?;
    if let Some(bs) = g.browser_session_id {
        crate::db::browser_sessions::link_session(tx, &issued.session_id, bs)?;
    }
    Ok(issued)
}

/// The token answer (RFC 6749 §5.1 + OIDC Core §3.1.3.3): the access token, an id_token when
/// `openid` was granted, the refresh token when `offline_access` was.
pub fn token_answer(
    state: &AppState,
    g: &Grant<'_>,
    issued: &Issued,
    now: i64,
) -> OauthResult<Response> {
    let ttl = state.config.tokens.access_ttl.as_secs() as i64;
    let mut body = json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": g.scope,
    });
    if has_scope(g.scope, "offline_access") {
        body["refresh_token"] = json!(issued.refresh_token);
    }
    if has_scope(g.scope, "openid") {
        body["id_token"] = json!(id_token(state, g, &issued.session_id, now)?);
    }
    Ok(json_no_store(&body))
}

/// An RS256 id_token (OIDC Core §2) for the grant.
pub fn id_token(
    state: &AppState,
    g: &Grant<'_>,
    sid: &crate::ids::SessionId,
    now: i64,
) -> OauthResult<String> {
    let iat = now.div_euclid(1000);
    let mut claims = user_claims(g.user, g.org, g.membership, g.scope);
    let m = claims.as_object_mut().expect("an object");
    m.insert("iss".into(), json!(state.config.server.public_url));
    m.insert("aud".into(), json!(g.client.id));
    m.insert("azp".into(), json!(g.client.id));
    m.insert("iat".into(), json!(iat));
    m.insert(
        "exp".into(),
        json!(iat + state.config.tokens.access_ttl.as_secs() as i64),
    );
    m.insert("auth_time".into(), json!(g.auth_time.div_euclid(1000)));
    m.insert("amr".into(), json!(g.amr));
    m.insert("sid".into(), json!(sid));
    if let Some(n) = g.nonce {
        m.insert("nonce".into(), json!(n));
    }
    sign_id_token(state, &claims)
}

fn sign_id_token(state: &AppState, claims: &Value) -> OauthResult<String> {
    state
        .keys
        .sign_rs256(claims)
        .map_err(|e| OauthError::Internal(ApiError::internal(format!("signing id_token: {e}"))))
}

/// The claims of an id_token Latchkey signed (any published RS256 key, expiry not checked):
/// the `id_token_hint` of RP-initiated logout.
pub fn verify_id_token_hint(state: &AppState, token: &str) -> Option<Value> {
    if token.len() > 8192 {
        return None;
    }
    state.keys.verify_rs256_ignoring_expiry(token)
}

/// `iss`: the issuer every token and the discovery document name.
pub fn issuer(state: &AppState) -> String {
    state.config.server.public_url.clone()
}

/// A fresh random secret for a confidential client (shown once, stored as its hash).
pub fn new_secret() -> String {
    format!("{SECRET_PREFIX}{}", crypto::random_token(32))
}

/// A fresh user code for the device flow: 8 letters without vowels or look-alikes,
/// shown `XXXX-XXXX`.
pub fn new_user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let bytes = crypto::random_bytes(8);
    let code: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &code[..4], &code[4..])
}

/// A user code as typed (any case, with or without the dash or spaces) in its canonical form,
/// or None when it cannot be one.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let letters: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (letters.len() == 8 && letters.is_ascii())
        .then(|| format!("{}-{}", &letters[..4], &letters[4..]))
}
