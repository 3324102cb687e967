//! The WorkOS-compatible API (API.md §14, docs/workos.md): WorkOS's User Management API at the
//! root paths the official SDKs call, over Latchkey's own accounts, orgs, memberships, sessions
//! and flows. This module is what its handlers share: the API key (the secret of an OAuth
//! client registered with `profile: "workos"`), WorkOS's error bodies and list envelopes,
//! `Idempotency-Key`, lenient bodies (unknown fields ignored, on these routes only), and the
//! objects exactly as the SDKs' models read them (tests/workos/FIELDS.md).

pub mod authenticate;
pub mod invitations;
pub mod memberships;
pub mod orgs;
pub mod users;

use crate::api::Ctx;
use crate::clock::rfc3339;
use crate::crypto;
use crate::db::Tx;
use crate::db::oauth::{self, Client};
use crate::db::orgs::Org;
use crate::db::users::{Membership, User};
use crate::db::workos::{self as store, Page};
use crate::error::{ApiError, ApiResult};
use crate::role::Role;
use crate::state::AppState;
use crate::status::MemberStatus;
use rouille::{Request, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The root paths of the WorkOS-compatible API (documented by WorkOS, not in Latchkey's
/// OpenAPI document).
pub const PREFIXES: &[&str] = &[
    "/user_management/",
    "/organizations",
    "/sso/jwks/",
    "/auth/factors/",
    "/auth/challenges/",
];

pub fn is_workos_path(path: &str) -> bool {
    PREFIXES.iter().any(|p| path.starts_with(p))
}

/// A WorkOS error answer: `{code, message, …extra}` with its status.
pub struct WError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub extra: Value,
    internal: Option<ApiError>,
}

pub type WResult<T> = Result<T, WError>;

impl WError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> WError {
        WError {
            status,
            code,
            message: message.into(),
            extra: json!({}),
            internal: None,
        }
    }

    pub fn not_found(what: &str, id: &str) -> WError {
        let mut e = WError::new(
            404,
            "entity_not_found",
            format!("{what} not found: '{id}'."),
        );
        e.extra = json!({ "entity_id": id });
        e
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> WError {
        let message = message.into();
        let mut e = WError::new(
            422,
            "invalid_request_parameters",
            format!("{field}: {message}"),
        );
        e.extra = json!({ "errors": [{ "code": "invalid", "field": field, "message": message }] });
        e
    }

    pub fn with(mut self, extra: Value) -> WError {
        if let (Some(m), Value::Object(e)) = (self.extra.as_object_mut(), extra) {
            m.extend(e);
        }
        self
    }

    fn into_response(self) -> ApiResult<Response> {
        if let Some(e) = self.internal {
            return Err(e);
        }
        let mut body = json!({ "code": self.code, "message": self.message });
        if let (Some(m), Some(e)) = (body.as_object_mut(), self.extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        Ok(Response::json(&body).with_status_code(self.status))
    }
}

impl From<ApiError> for WError {
    fn from(e: ApiError) -> WError {
        let status = e.status();
        if status >= 500 {
            let mut w = WError::new(500, "server_error", "Internal server error");
            w.internal = Some(e);
            return w;
        }
        let code: &'static str = match status {
            400 | 422 => "invalid_request_parameters",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "entity_not_found",
            409 => "conflict",
            413 => "payload_too_large",
            429 => "rate_limit_exceeded",
            _ => "invalid_request",
        };
        let mut w = WError::new(
            if status == 400 { 422 } else { status },
            code,
            e.message.clone(),
        );
        if let Some(f) = e.errors.first() {
            w.extra = json!({ "errors": [{ "code": "invalid", "field": f.field, "message": f.message }] });
        }
        if let Some(secs) = e.retry_after {
            w.extra = json!({ "retry_after": secs });
        }
        w
    }
}

impl From<crate::db::Error> for WError {
    fn from(e: crate::db::Error) -> WError {
        ApiError::from(e).into()
    }
}

/// The caller: the WorkOS-profile client whose secret is the request's `Bearer` key.
pub struct Env {
    pub client: Client,
}

fn bearer_client(state: &AppState, req: &Request) -> WResult<Client> {
    let key = crate::http::input::bearer(req)
        .filter(|k| k.len() <= 256)
        .ok_or_else(|| {
            WError::new(
                401,
                "unauthorized",
                "An API key is required (Authorization: Bearer sk_…)",
            )
        })?;
    client_by_secret(state, key)?.ok_or_else(|| WError::new(401, "unauthorized", "Invalid API key"))
}

/// The WorkOS-profile client whose secret is `secret`, if any.
pub fn client_by_secret(state: &AppState, secret: &str) -> WResult<Option<Client>> {
    let hash = crypto::token_hash(secret);
    let found = state.db.read(|c| {
        let Some(id) = store::client_by_secret_hash(c, &hash)? else {
            return Ok::<_, crate::db::Error>(None);
        };
        oauth::find_client(c, &id)
    })?;
    Ok(found.filter(|c| {
        c.profile == "workos"
            && c.secret_hash
                .as_deref()
                .is_some_and(|h| crypto::ct_eq(h.as_bytes(), hash.as_bytes()))
    }))
}

/// Runs a WorkOS handler: 404 when `[workos]` is off, the API key, `Idempotency-Key` on POST
/// (the same key and body again → the first answer; another body → 422), and WorkOS's error
/// shape for every refusal.
pub fn run(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    f: impl FnOnce(&Env) -> WResult<Response>,
) -> ApiResult<Response> {
    if !state.config.workos.enabled {
        return WError::new(404, "not_found", "Not Found").into_response();
    }
    let client = match bearer_client(state, req) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    run_as(state, ctx, req, Env { client }, f)
}

/// [`run`] for a caller already authenticated another way (the authenticate endpoint's
/// `client_id` + `client_secret`).
pub fn run_as(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    env: Env,
    f: impl FnOnce(&Env) -> WResult<Response>,
) -> ApiResult<Response> {
    let key = (req.method() == "POST")
        .then(|| req.header("Idempotency-Key"))
        .flatten()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_string);
    let Some(key) = key else {
        return match f(&env) {
            Ok(r) => Ok(r),
            Err(e) => e.into_response(),
        };
    };
    // The body decides whether a repeat is the same request.
    let body = match crate::http::input::body_bytes(req, state.config.server.max_body_bytes) {
        Ok(b) => b,
        Err(e) => return WError::from(e).into_response(),
    };
    let request_hash = crypto::hex(&crypto::sha256(
        [req.url().as_bytes(), b"\n", &body].concat().as_slice(),
    ));
    let since = ctx.now - crate::maintenance::IDEMPOTENCY_MS;
    let seen = state
        .db
        .read(|c| store::idempotent(c, &env.client.id, &key, since))?;
    if let Some((hash, status, stored)) = seen {
        if hash != request_hash {
            return WError::new(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used with another request",
            )
            .into_response();
        }
        return Ok(Response::from_data("application/json", stored)
            .with_status_code(status)
            .with_additional_header("Idempotent-Replayed", "true"));
    }
    BODY.with(|b| *b.borrow_mut() = Some(body));
    let out = f(&env);
    BODY.with(|b| *b.borrow_mut() = None);
    let resp = match out {
        Ok(r) => r,
        Err(e) => e.into_response()?,
    };
    if resp.status_code < 500 {
        let (mut reader, _) = resp.data.into_reader_and_size();
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut bytes);
        let status = resp.status_code;
        state.db.write(|tx| {
            store::remember(
                tx,
                &env.client.id,
                &key,
                &request_hash,
                status,
                &bytes,
                ctx.now,
            )
        })?;
        let mut out = Response::from_data("application/json", bytes).with_status_code(status);
        out.headers = resp.headers;
        if status == 204 {
            out.data = rouille::ResponseBody::empty();
        }
        return Ok(out);
    }
    Ok(resp)
}

thread_local! {
    /// The body an `Idempotency-Key` request already read (it is read once).
    static BODY: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

/// The JSON body (unknown fields ignored; an empty body is `{}`), or 422 naming the field.
pub fn body<T: DeserializeOwned>(state: &AppState, req: &Request) -> WResult<T> {
    let bytes = match BODY.with(|b| b.borrow_mut().take()) {
        Some(b) => b,
        None => crate::http::input::body_bytes(req, state.config.server.max_body_bytes)?,
    };
    let bytes: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}"
    } else {
        &bytes
    };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        WError::invalid(&field, e.inner().to_string())
    })
}

/// `limit` (1..100, default 10), `before`, `after`, `order` (`desc` by default).
pub fn page_of(req: &Request) -> WResult<(i64, Option<String>, Option<String>, bool)> {
    let q = |k: &str| crate::http::input::query(req, k).filter(|v| !v.is_empty());
    let limit = match q("limit") {
        None => 10,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| WError::invalid("limit", "must be 1 to 100"))?,
    };
    let desc = match q("order").as_deref() {
        None | Some("desc") | Some("normal") => true,
        Some("asc") => false,
        Some(_) => return Err(WError::invalid("order", "must be asc or desc")),
    };
    let cursor = |k: &str| -> WResult<Option<String>> {
        match q(k) {
            Some(c) if c.len() > 128 => Err(WError::invalid(k, "not an id")),
            c => Ok(c),
        }
    };
    Ok((limit, cursor("before")?, cursor("after")?, desc))
}

/// Lists a page: fetches `limit + 1` through `fetch`, then the envelope.
pub fn list<T>(
    req: &Request,
    fetch: impl FnOnce(&Page<'_>) -> WResult<Vec<T>>,
    id: impl Fn(&T) -> String,
    view: impl Fn(&T) -> WResult<Value>,
) -> WResult<Response> {
    let (limit, before, after, desc) = page_of(req)?;
    let page = Page {
        after: after.as_deref(),
        before: before.as_deref(),
        desc,
        limit,
    };
    let mut rows = fetch(&page)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if page.reversed() {
        rows.reverse();
    }
    let data: Vec<Value> = rows.iter().map(&view).collect::<WResult<_>>()?;
    // `after` names the last item when more follow; `before` the first when earlier ones exist.
    let (first, last) = (rows.first().map(&id), rows.last().map(&id));
    let (before_c, after_c) = if page.reversed() {
        (if more { first } else { None }, last)
    } else {
        (
            if page.after.is_some() { first } else { None },
            if more { last } else { None },
        )
    };
    Ok(ok(&json!({
        "object": "list",
        "data": data,
        "list_metadata": { "before": before_c, "after": after_c },
    })))
}

pub fn ok(v: &Value) -> Response {
    Response::json(v)
}

/// A bodiless success (no JSON content type, so the Node SDK reads `null`).
pub fn no_content() -> Response {
    Response::empty_204()
}

pub fn ts(ms: i64) -> String {
    rfc3339(ms)
}

/// WorkOS's role slug for a Latchkey role.
pub fn role_slug(role: &str) -> &str {
    match Role::parse(role) {
        Some(Role::OrgAdmin) => "admin",
        Some(Role::Owner) => "owner",
        _ => "member",
    }
}

/// The Latchkey role of a WorkOS role slug.
pub fn role_of_slug(slug: &str) -> WResult<Role> {
    match slug {
        "member" => Ok(Role::Member),
        "admin" | "org_admin" => Ok(Role::OrgAdmin),
        "owner" => Ok(Role::Owner),
        _ => Err(WError::invalid(
            "role_slug",
            "must be member, admin or owner",
        )),
    }
}

pub fn user_obj(conn: &Tx, u: &User) -> WResult<Value> {
    let (external_id, metadata) = store::user_extras(conn, &u.id)?;
    Ok(json!({
        "object": "user",
        "id": u.id,
        "email": u.email,
        "email_verified": u.email_verified,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "name": u.name,
        "profile_picture_url": u.avatar_url,
        "external_id": external_id,
        "metadata": metadata,
        "last_sign_in_at": u.last_login_at.map(ts),
        "locale": null,
        "created_at": ts(u.created_at),
        "updated_at": ts(u.updated_at),
    }))
}

pub fn org_obj(conn: &Tx, o: &Org) -> WResult<Value> {
    let (external_id, metadata) = store::org_extras(conn, &o.id)?;
    let domains: Vec<Value> = store::domains_of(conn, &o.id)?
        .into_iter()
        .map(|d| {
            json!({
                "object": "organization_domain",
                "id": d.id,
                "organization_id": d.org_id,
                "domain": d.domain,
                "state": d.state,
                "verification_strategy": "manual",
                "created_at": ts(d.created_at),
                "updated_at": ts(d.updated_at),
            })
        })
        .collect();
    Ok(json!({
        "object": "organization",
        "id": o.id,
        "name": o.name,
        "domains": domains,
        "metadata": metadata,
        "external_id": external_id,
        "stripe_customer_id": null,
        "allow_profiles_outside_organization": false,
        "created_at": ts(o.created_at),
        "updated_at": ts(o.updated_at),
    }))
}

pub fn member_status(m: &Membership) -> &'static str {
    match m.status {
        MemberStatus::Active => "active",
        MemberStatus::Deactivated => "inactive",
    }
}

pub fn membership_obj(conn: &Tx, m: &Membership, u: &User, o: &Org) -> WResult<Value> {
    let slug = role_slug(&m.role);
    Ok(json!({
        "object": "organization_membership",
        "id": m.id,
        "user_id": m.user_id,
        "organization_id": m.org_id,
        "organization_name": o.name,
        "status": member_status(m),
        "directory_managed": false,
        "role": { "slug": slug },
        "roles": [{ "slug": slug }],
        "custom_attributes": {},
        "user": user_obj(conn, u)?,
        "created_at": ts(m.joined_at),
        "updated_at": ts(m.joined_at),
    }))
}

/// On the embedded development default: a ready WorkOS client (deployment-wide, first-party,
/// redirects to the usual local dev ports) whose `sk_test_…` key is kept in the database and
/// printed on every start, so `WORKOS_API_KEY`, `WORKOS_CLIENT_ID` and `WORKOS_BASE_URL` can
/// point at Latchkey at once. Returns (client id, key).
pub fn dev_client(db: &crate::db::Db, now: i64) -> Result<(String, String), crate::db::Error> {
    use crate::db::meta;
    db.write(|tx| {
        if let (Some(id), Some(key)) = (
            meta::get(tx, "dev_workos_client")?,
            meta::get(tx, "dev_workos_key")?,
        ) && oauth::find_client(tx, &id)?.is_some()
        {
            return Ok((id, key));
        }
        let key = format!("sk_test_{}", crypto::random_token(32));
        let local = |port: u16, path: &str| {
            [
                format!("http://localhost:{port}{path}"),
                format!("http://127.0.0.1:{port}{path}"),
            ]
        };
        let mut redirects = Vec::new();
        let mut after = Vec::new();
        for port in [3000, 5173, 8000, 8080] {
            redirects.extend(local(port, "/callback"));
            redirects.extend(local(port, "/auth/callback"));
            after.extend(local(port, "/"));
        }
        let c = Client {
            id: crate::ids::new_id("client", now),
            org_id: None,
            name: "Development app (WorkOS SDK)".into(),
            secret_hash: Some(crypto::token_hash(&key)),
            redirect_uris: redirects,
            post_logout_redirect_uris: after,
            first_party: true,
            profile: "workos".into(),
            created_at: now,
            updated_at: now,
        };
        oauth::insert_client(tx, &c)?;
        meta::put(tx, "dev_workos_client", &c.id)?;
        meta::put(tx, "dev_workos_key", &key)?;
        Ok((c.id, key))
    })
}
