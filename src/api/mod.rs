//! The route table — every endpoint on one screen — and the dispatcher: 404 for an unknown
//! path, 405 (with `Allow`) for a known path with another method.

pub mod admin;
pub mod admin_outbox;
pub mod guard;
pub mod meta;
pub mod views;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use rouille::{Request, Response};
use std::net::IpAddr;

/// Per-request facts handlers may need, independent of how the connection was accepted.
pub struct Ctx {
    pub request_id: String,
    pub now: i64,
    pub ip: IpAddr,
    /// The matched route template (for logs and metrics), or "-".
    pub route: &'static str,
    params: Vec<(&'static str, String)>,
}

impl Ctx {
    pub fn new(request_id: String, now: i64, ip: IpAddr) -> Ctx {
        Ctx {
            request_id,
            now,
            ip,
            route: "-",
            params: Vec::new(),
        }
    }

    /// A path parameter captured by `{name}` in the route template.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

pub type Handler = fn(&AppState, &Ctx, &Request) -> ApiResult<Response>;

/// (method, path template, handler). `{name}` captures one segment.
pub static ROUTES: &[(&str, &str, Handler)] = &[
    // Operations and well-known documents.
    ("GET", "/healthz", meta::healthz),
    ("GET", "/readyz", meta::readyz),
    ("GET", "/.well-known/jwks.json", meta::jwks),
    (
        "GET",
        "/.well-known/openid-configuration",
        meta::openid_configuration,
    ),
    // Operator API (admin key).
    ("POST", "/api/v1/admin/orgs", admin::create_org),
    ("GET", "/api/v1/admin/orgs", admin::list_orgs),
    ("GET", "/api/v1/admin/orgs/{slug}", admin::get_org),
    ("PUT", "/api/v1/admin/orgs/{slug}", admin::update_org),
    ("DELETE", "/api/v1/admin/orgs/{slug}", admin::delete_org),
    (
        "POST",
        "/api/v1/admin/orgs/{slug}/members",
        admin::add_member,
    ),
    ("POST", "/api/v1/admin/users", admin::create_user),
    ("GET", "/api/v1/admin/users", admin::list_users),
    ("GET", "/api/v1/admin/outbox", admin_outbox::list),
    (
        "POST",
        "/api/v1/admin/outbox/{id}/retry",
        admin_outbox::retry,
    ),
];

fn matches(template: &'static str, path: &str, params: &mut Vec<(&'static str, String)>) -> bool {
    params.clear();
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) => {
                if let Some(name) = ts.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if ps.is_empty() {
                        return false;
                    }
                    params.push((name, ps.to_string()));
                } else if ts != ps {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Routes a request to its handler.
pub fn dispatch(state: &AppState, ctx: &mut Ctx, req: &Request) -> ApiResult<Response> {
    let path = req.url();
    let method = req.method();
    let mut allowed: Vec<&str> = Vec::new();
    let mut params = Vec::new();
    for (m, template, handler) in ROUTES {
        if !matches(template, &path, &mut params) {
            continue;
        }
        if *m == method || (method == "HEAD" && *m == "GET") {
            ctx.route = template;
            ctx.params = std::mem::take(&mut params);
            return handler(state, ctx, req);
        }
        allowed.push(m);
    }
    if allowed.is_empty() {
        return Err(ApiError::not_found(format!("No route for {method} {path}")));
    }
    if allowed.contains(&"GET") {
        allowed.push("HEAD");
    }
    Err(ApiError::new(
        405,
        "method_not_allowed",
        format!(
            "{method} is not allowed here; allowed: {}",
            allowed.join(", ")
        ),
    )
    .with_header("Allow", allowed.join(", ")))
}
