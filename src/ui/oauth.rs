//! The provider's browser endpoints (API.md §13): `/oauth2/authorize` (sign-in through the
//! hosted pages, the org picker, consent, the code), `/device` (approving a device code) and
//! `/oauth2/logout` (RP-initiated logout). An unknown client or a redirect URI not
//! registered exactly never redirects: the person sees an error page instead.

use super::Page;
use crate::crypto;
use crate::db::oauth::{self as store, Client, Code};
use crate::db::orgs::{self, Org, SignupMode};
use crate::db::users::{self, Membership};
use crate::error::ApiResult;
use crate::oauth::{CODE_TTL_MS, grant_scope, has_scope, normalize_user_code};
use crate::ratelimit::client_key;
use crate::status::OrgStatus;
use rouille::Response;
use serde_json::json;

/// The authorization request's parameters (query of a GET, form of a POST).
const PARAMS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "ui_locales",
    "organization",
    // Set by Latchkey itself when it sends the person to sign in again (prompt=login,
    // max_age): the sign-in must be no older than this (ms). It only ever asks for more.
    "lk_after",
];

struct Authz {
    client: Client,
    redirect_uri: String,
    state: String,
    params: Vec<(String, String)>,
}

impl Authz {
    fn get(&self, k: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// A redirect to the client with `pairs` (and `state`, `iss`) added to its redirect URI.
    fn back(&self, p: &Page<'_>, pairs: &[(&str, &str)]) -> Response {
        let mut url = url::Url::parse(&self.redirect_uri).expect("registered URIs parse");
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            if !self.state.is_empty() {
                q.append_pair("state", &self.state);
            }
            q.append_pair("iss", &crate::oauth::issuer(p.state));
        }
        Response::redirect_302(url.to_string())
    }

    fn error(&self, p: &Page<'_>, error: &str, description: &str) -> Response {
        self.back(p, &[("error", error), ("error_description", description)])
    }

    /// This request again as a URL of ours (to come back to after signing in).
    fn again(&self, drop: &[&str], add: &[(&str, String)]) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            if !v.is_empty() && !drop.contains(&k.as_str()) {
                s.append_pair(k, v);
            }
        }
        for (k, v) in add {
            s.append_pair(k, v);
        }
        format!("/oauth2/authorize?{}", s.finish())
    }
}

fn param(p: &Page<'_>, name: &str) -> String {
    if p.req.method() == "POST" {
        p.field(name)
    } else {
        p.query(name)
    }
}

/// The client and its exactly registered redirect URI, or the error page (never a redirect).
fn client_and_redirect(p: &Page<'_>) -> ApiResult<Result<Authz, Response>> {
    let params: Vec<(String, String)> = PARAMS
        .iter()
        .map(|k| (k.to_string(), param(p, k)))
        .collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let client_id = get("client_id");
    let client = if client_id.is_empty() || client_id.len() > 128 {
        None
    } else {
        p.state.db.read(|c| store::find_client(c, &client_id))?
    };
    let redirect_uri = get("redirect_uri");
    let Some(client) = client.filter(|c| c.redirect_uris.contains(&redirect_uri)) else {
        return Ok(Err(p.message(
            400,
            None,
            "msg.heading_problem",
            "msg.oauth_unknown_client",
            None,
        )?));
    };
    Ok(Ok(Authz {
        state: get("state"),
        client,
        redirect_uri,
        params,
    }))
}

/// `GET|POST /oauth2/authorize`.
pub fn authorize(p: &mut Page<'_>) -> ApiResult<Response> {
    let a = match client_and_redirect(p)? {
        Ok(a) => a,
        Err(page) => return Ok(page),
    };
    run(p, &a, None)
}

/// `POST /oauth2/authorize/decide`: the org picker and consent form of [`authorize`] (CSRF
/// checked by the frame). Every rule is checked again from the posted request.
pub fn decide(p: &mut Page<'_>) -> ApiResult<Response> {
    let a = match client_and_redirect(p)? {
        Ok(a) => a,
        Err(page) => return Ok(page),
    };
    let decision = p.field("decision");
    if decision == "deny" {
        return Ok(a.error(p, "access_denied", "The user denied the request"));
    }
    if decision != "approve" {
        return Ok(a.error(p, "invalid_request", "No decision"));
    }
    run(p, &a, Some(()))
}

/// The authorization request from its checks to the code. `approved`: the person just
/// approved on the consent form (so consent is not asked again).
fn run(p: &mut Page<'_>, a: &Authz, approved: Option<()>) -> ApiResult<Response> {
    if a.get("response_type") != "code" {
        return Ok(a.error(
            p,
            "unsupported_response_type",
            "Only response_type=code is supported",
        ));
    }
    let challenge = a.get("code_challenge");
    let method = a.get("code_challenge_method");
    // PKCE is required of every client, except a confidential WorkOS-profile client, which
    // WorkOS lets go without (its SDK's authenticate_with_code sends no verifier).
    let pkce_optional = a.client.profile == "workos" && !a.client.is_public();
    if challenge.is_empty() && !pkce_optional {
        return Ok(a.error(
            p,
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    }
    if !challenge.is_empty() && method != "S256" {
        return Ok(a.error(
            p,
            "invalid_request",
            "Only code_challenge_method=S256 is supported",
        ));
    }
    if !challenge.is_empty() && challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Ok(a.error(
            p,
            "invalid_request",
            "code_challenge is not a base64url SHA-256",
        ));
    }
    if a.get("nonce").len() > 512 || a.state.len() > 1024 {
        return Ok(a.error(p, "invalid_request", "state or nonce is too long"));
    }
    let scope = grant_scope(a.get("scope"));
    let prompts: Vec<&str> = a.get("prompt").split_ascii_whitespace().collect();
    if prompts.contains(&"none") && prompts.len() > 1 {
        return Ok(a.error(p, "invalid_request", "prompt=none cannot be combined"));
    }
    let max_age = match a.get("max_age") {
        "" => None,
        m => match m.parse::<i64>() {
            Ok(v) if v >= 0 => Some(v),
            _ => return Ok(a.error(p, "invalid_request", "max_age must be a number of seconds")),
        },
    };
    let after: i64 = a.get("lk_after").parse().unwrap_or(0);
    let now = p.ctx.now;

    // Signed in, freshly enough?
    let signed = p.signed_in().map(|s| (s.user.clone(), s.session.clone()));
    let stale = |auth_time: i64| {
        auth_time < after
            || (prompts.contains(&"login") && after == 0)
            || max_age.is_some_and(|m| now - auth_time > m.saturating_mul(1000))
    };
    let (user, bs) = match signed {
        Some((u, bs)) if !stale(bs.auth_time) => (u, bs),
        _ => {
            if prompts.contains(&"none") {
                return Ok(a.error(p, "login_required", "The user is not signed in"));
            }
            let again = a.again(
                &["prompt", "max_age", "lk_after"],
                &[("lk_after", now.to_string())],
            );
            let mut to = url::form_urlencoded::Serializer::new(String::new());
            to.append_pair("return_to", &again);
            if !a.get("login_hint").is_empty() {
                to.append_pair("email", a.get("login_hint"));
            }
            if !a.get("ui_locales").is_empty() {
                to.append_pair("ui_locales", a.get("ui_locales"));
            }
            if let Some(slug) = login_org(p, a)? {
                to.append_pair("org", &slug);
            }
            // A sign-in that must be fresh shows the form even to a signed-in browser.
            to.append_pair("prompt", "login");
            return Ok(p.redirect(&format!("/login?{}", to.finish())));
        }
    };

    // Which org: the client's own, the one asked for, the only one, or the person picks.
    let memberships: Vec<(Membership, Org)> = p
        .state
        .db
        .read(|c| users::memberships_of(c, &user.id))?
        .into_iter()
        .filter(|(m, o)| crate::api::guard::is_active(m) && o.status == OrgStatus::Active)
        .filter(|(_, o)| a.client.org_id.as_ref().is_none_or(|id| *id == o.id))
        .collect();
    let wanted = a.get("organization");
    let candidates: Vec<&(Membership, Org)> = memberships
        .iter()
        .filter(|(_, o)| wanted.is_empty() || o.slug == wanted || o.id == wanted)
        .collect();
    let chosen = match candidates.len() {
        0 => {
            return Ok(a.error(
                p,
                "access_denied",
                "The account is not an active member of an organization this client serves",
            ));
        }
        1 => Some(candidates[0].clone()),
        _ => None,
    };
    if let Some((_, org)) = &chosen {
        if org.settings.signup_mode == SignupMode::Domain && !user.email_verified {
            return Ok(a.error(
                p,
                "access_denied",
                "The organization requires a verified email",
            ));
        }
        if org.settings.require_2fa && !user.two_factor_enabled {
            if prompts.contains(&"none") {
                return Ok(a.error(
                    p,
                    "interaction_required",
                    "Two-factor enrolment is required",
                ));
            }
            let back = a.again(&[], &[]);
            p.set_next(&org.slug, &back);
            return Ok(p.redirect("/login/setup-2fa"));
        }
    }

    // Consent: never for a first-party client; else once per (person, client, org) and scope.
    let needs_consent = |org: &Org| -> ApiResult<bool> {
        if a.client.first_party || approved.is_some() {
            return Ok(false);
        }
        if prompts.contains(&"consent") {
            return Ok(true);
        }
        let given = p
            .state
            .db
            .read(|c| store::consent(c, &user.id, &a.client.id, &org.id))?;
        Ok(!given.is_some_and(|g| scope.split_ascii_whitespace().all(|s| has_scope(&g, s))))
    };
    let ask = match &chosen {
        None => true,
        Some((_, org)) => needs_consent(org)?,
    };
    if ask {
        if prompts.contains(&"none") {
            let e = if chosen.is_none() {
                "account_selection_required"
            } else {
                "consent_required"
            };
            return Ok(a.error(p, e, "The user must choose or consent"));
        }
        let orgs: Vec<_> = candidates
            .iter()
            .map(|(_, o)| json!({ "slug": o.slug, "name": o.name, "logo_url": o.logo_url }))
            .collect();
        let scopes: Vec<&str> = if a.client.first_party {
            Vec::new()
        } else {
            scope.split_ascii_whitespace().collect()
        };
        let hidden: Vec<(String, String)> = a
            .params
            .iter()
            .filter(|(k, v)| !v.is_empty() && k != "organization")
            .cloned()
            .collect();
        let org = chosen.as_ref().map(|(_, o)| o.clone());
        return p.render(
            200,
            "oauth_consent.html",
            org.as_ref(),
            json!({
                "action": "/oauth2/authorize/decide",
                "client_name": a.client.name,
                "email": user.email,
                "orgs": orgs,
                "scopes": scopes,
                "hidden": hidden,
            }),
        );
    }
    let (_, org) = chosen.expect("chosen above");
    if approved.is_some() && !a.client.first_party {
        p.state
            .db
            .write(|tx| store::put_consent(tx, &user.id, &a.client.id, &org.id, &scope, now))?;
    }

    // The code: single use, 60 s, bound to the client, the redirect URI and the challenge.
    let code = crypto::random_token(32);
    let row = Code {
        client_id: a.client.id.clone(),
        user_id: user.id.clone(),
        org_id: org.id.clone(),
        browser_session_id: Some(bs.id.clone()),
        redirect_uri: a.redirect_uri.clone(),
        scope,
        nonce: Some(a.get("nonce").to_string()).filter(|n| !n.is_empty()),
        code_challenge: Some(challenge.to_string()).filter(|c| !c.is_empty()),
        auth_time: bs.auth_time,
        amr: bs.auth_methods.clone(),
        created_at: now,
        expires_at: now + CODE_TTL_MS,
        used_at: None,
        session_id: None,
    };
    p.state
        .db
        .write(|tx| store::insert_code(tx, &crypto::token_hash(&code), &row))?;
    Ok(a.back(p, &[("code", &code)]))
}

/// The org slug to brand the sign-in page with: the client's org, or the one asked for.
fn login_org(p: &Page<'_>, a: &Authz) -> ApiResult<Option<String>> {
    if let Some(id) = &a.client.org_id {
        return Ok(p
            .state
            .db
            .read(|c| orgs::find_by_id(c, id))?
            .map(|o| o.slug));
    }
    let wanted = a.get("organization");
    if wanted.is_empty() || wanted.len() > 64 {
        return Ok(None);
    }
    Ok(p.state
        .db
        .read(|c| orgs::find_by_slug(c, wanted))?
        .map(|o| o.slug))
}

// ---- Device authorization (RFC 8628 §3.3) --------------------------------------------------

/// Wrong user codes a client address may try per 10 minutes.
const DEVICE_GUESSES: u32 = 10;

/// `GET /device?user_code=`: the code form (signed in first).
pub fn device_form(p: &mut Page<'_>) -> ApiResult<Response> {
    let code = p.query("user_code");
    if p.signed_in().is_none() {
        let back = if code.is_empty() {
            "/device".to_string()
        } else {
            format!(
                "/device?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("user_code", &code)
                    .finish()
            )
        };
        let to = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &back)
            .finish();
        return Ok(p.redirect(&format!("/login?{to}")));
    }
    p.render(200, "device.html", None, json!({ "user_code": code }))
}

/// `POST /device`: the code, then (same form) the org and the decision.
pub fn device(p: &mut Page<'_>) -> ApiResult<Response> {
    let Some(signed) = p.signed_in() else {
        return Ok(p.redirect("/device"));
    };
    let (user, bs) = (signed.user.clone(), signed.session.clone());
    let typed = p.field("user_code");
    let now = p.ctx.now;
    let key = format!("device:ip:{}", client_key(&p.ctx.ip));
    let Some(code) = normalize_user_code(&typed) else {
        return device_wrong(p, &key, &typed);
    };
    let hash = crypto::token_hash(&code);
    let found = p
        .state
        .db
        .read(|c| store::device_by_user_code(c, &hash))?
        .filter(|d| d.state == "pending" && now < d.expires_at);
    let Some(d) = found else {
        return device_wrong(p, &key, &typed);
    };
    let client = p
        .state
        .db
        .read(|c| store::find_client(c, &d.client_id))?
        .ok_or_else(|| crate::error::ApiError::not_found("Unknown client"))?;
    let memberships: Vec<(Membership, Org)> = p
        .state
        .db
        .read(|c| users::memberships_of(c, &user.id))?
        .into_iter()
        .filter(|(m, o)| crate::api::guard::is_active(m) && o.status == OrgStatus::Active)
        .filter(|(_, o)| client.org_id.as_ref().is_none_or(|id| *id == o.id))
        .collect();
    let decision = p.field("decision");
    if decision.is_empty() {
        let orgs: Vec<_> = memberships
            .iter()
            .map(|(_, o)| json!({ "slug": o.slug, "name": o.name, "logo_url": o.logo_url }))
            .collect();
        if orgs.is_empty() {
            return p.message(403, None, "msg.heading_forbidden", "msg.not_a_member", None);
        }
        return p.render(
            200,
            "oauth_consent.html",
            None,
            json!({
                "action": "/device",
                "client_name": client.name,
                "email": user.email,
                "orgs": orgs,
                "scopes": d.scope.split_ascii_whitespace().collect::<Vec<_>>(),
                "hidden": [["user_code", code]],
                "user_code": code,
            }),
        );
    }
    let approve = decision == "approve";
    let org = memberships
        .iter()
        .find(|(_, o)| o.slug == p.field("organization"))
        .map(|(_, o)| o.clone());
    if approve && org.is_none() {
        return p.message(403, None, "msg.heading_forbidden", "msg.not_a_member", None);
    }
    if let Some(o) = &org
        && approve
        && o.settings.require_2fa
        && !user.two_factor_enabled
    {
        let back = format!("/device?user_code={code}");
        p.set_next(&o.slug, &back);
        return Ok(p.redirect("/login/setup-2fa"));
    }
    let decided = p.state.db.write(|tx| {
        store::decide_device(
            tx,
            &d.device_code_hash,
            approve,
            &user.id,
            org.as_ref().map(|o| &o.id),
            bs.auth_time,
            &bs.auth_methods,
            now,
        )
    })?;
    if !decided {
        return device_wrong(p, &key, &typed);
    }
    if approve {
        p.message(
            200,
            org.as_ref(),
            "msg.heading_device_done",
            "msg.device_approved",
            None,
        )
    } else {
        p.message(
            200,
            None,
            "msg.heading_device_denied",
            "msg.device_denied",
            None,
        )
    }
}

/// A wrong or spent user code: counted against the client address (429 past the budget).
fn device_wrong(p: &Page<'_>, key: &str, typed: &str) -> ApiResult<Response> {
    p.state
        .limiter
        .hit(key, DEVICE_GUESSES, 600_000, p.ctx.now)
        .map_err(crate::error::ApiError::rate_limited)?;
    let mut r = p.render(
        400,
        "device.html",
        None,
        json!({ "user_code": typed.chars().take(16).collect::<String>(),
                "error": p.t("msg.device_code_invalid") }),
    )?;
    r.status_code = 400;
    Ok(r)
}

// ---- RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) -------------------------

/// `GET|POST /oauth2/logout?id_token_hint=&post_logout_redirect_uri=&state=&client_id=`.
/// With a valid `id_token_hint` of the signed-in person the browser session ends at once;
/// without one, the person confirms first. The redirect only goes to a URI registered for the
/// client.
pub fn logout(p: &mut Page<'_>) -> ApiResult<Response> {
    let hint = param(p, "id_token_hint");
    let st = param(p, "state");
    let claims = if hint.is_empty() {
        None
    } else {
        match crate::oauth::verify_id_token_hint(p.state, &hint) {
            Some(c) if c["iss"] == json!(crate::oauth::issuer(p.state)) => Some(c),
            _ => {
                return p.message(
                    400,
                    None,
                    "msg.heading_problem",
                    "msg.oauth_logout_invalid",
                    None,
                );
            }
        }
    };
    let client_id = claims
        .as_ref()
        .and_then(|c| c["aud"].as_str().map(str::to_string))
        .unwrap_or_else(|| param(p, "client_id"));
    let client = if client_id.is_empty() || client_id.len() > 128 {
        None
    } else {
        p.state.db.read(|c| store::find_client(c, &client_id))?
    };
    let post = param(p, "post_logout_redirect_uri");
    let redirect = if post.is_empty() {
        None
    } else {
        match client
            .as_ref()
            .filter(|c| c.post_logout_redirect_uris.contains(&post))
        {
            Some(_) => Some(post.clone()),
            None => {
                return p.message(
                    400,
                    None,
                    "msg.heading_problem",
                    "msg.oauth_logout_invalid",
                    None,
                );
            }
        }
    };
    let signed = p.browser.as_ref().map(|b| b.user.id.to_string());
    let same_person = claims
        .as_ref()
        .and_then(|c| c["sub"].as_str())
        .is_some_and(|sub| signed.as_deref() == Some(sub));
    let confirmed = p.req.method() == "POST";
    if let Some(uri) = &redirect
        && let Ok(u) = url::Url::parse(uri)
        && u.origin().is_tuple()
    {
        // The confirmation form ends at the client's registered post-logout URI.
        p.form_targets.push(u.origin().ascii_serialization());
    }
    if signed.is_some() && !same_person && !confirmed {
        let hidden: Vec<(String, String)> = [
            ("post_logout_redirect_uri", post.clone()),
            ("state", st.clone()),
            ("client_id", client_id.clone()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        return p.render(
            200,
            "oauth_logout.html",
            None,
            json!({ "client_name": client.as_ref().map(|c| c.name.clone()), "hidden": hidden }),
        );
    }
    if let Some(b) = p.browser.take() {
        let (state, ctx, req) = (p.state, p.ctx, p.req);
        state.change(ctx, req, |tx| {
            crate::flows::account::end_browser_session(
                tx,
                ctx,
                req,
                &b.user,
                &b.session.id,
                "logout",
            )
        })?;
    }
    p.set_cookie(super::SESSION_COOKIE, "", 0);
    p.clear_next();
    let mut resp = match redirect {
        Some(uri) => {
            let mut url = url::Url::parse(&uri).expect("registered URIs parse");
            if !st.is_empty() {
                url.query_pairs_mut().append_pair("state", &st);
            }
            Response::redirect_302(url.to_string())
        }
        None => p.message(200, None, "msg.heading_signed_out", "msg.signed_out", None)?,
    };
    crate::http::cookies::clear_all(&mut resp, &p.state.config);
    Ok(resp)
}
