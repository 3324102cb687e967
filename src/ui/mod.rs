//! The hosted pages (API.md §12, docs/pages.md): HTML at `server.public_url`, outside
//! `/api/v1`, that work without JavaScript. This module is the frame every page shares: the
//! route table, the browser session (a cookie of Latchkey's own origin), the CSRF token bound
//! to it, form input, rendering with the templates and languages of [`templates`], and the
//! security headers. The pages themselves are in [`pages`] and [`account`]; they call the same
//! functions as the JSON handlers, so every rule of the API holds here too.

mod account;
mod oauth;
mod pages;
pub mod templates;

use crate::api::Ctx;
use crate::crypto;
use crate::db::browser_sessions::{self, BrowserSession};
use crate::db::orgs::{self, Org};
use crate::db::users::{self, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::input;
use crate::state::AppState;
use crate::status::{BrowserState, UserStatus};
use hmac::{Hmac, KeyInit, Mac};
use rouille::{Request, Response};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;

/// The browser session cookie: "this person is signed in at Latchkey".
pub const SESSION_COOKIE: &str = "latchkey_session";
/// A random per-browser value the CSRF tokens of anonymous forms are bound to.
const CSRF_COOKIE: &str = "latchkey_csrf";
/// The language chosen with `?lang=`, kept for the next pages.
const LANG_COOKIE: &str = "latchkey_lang";
/// Where a sign-in goes on (org and `return_to`), between its steps.
const NEXT_COOKIE: &str = "latchkey_next";

/// How long a browser session lasts (the same absolute lifetime as an org session).
fn session_ttl(state: &AppState) -> i64 {
    state.config.tokens.session_max_age.as_millis() as i64
}

type PageFn = fn(&mut Page<'_>) -> ApiResult<Response>;

/// (method, path, handler). Paths are exact.
static PAGES: &[(&str, &str, PageFn)] = &[
    ("GET", "/", pages::home),
    ("GET", "/assets/style.css", pages::stylesheet),
    ("GET", "/login", pages::login_form),
    ("POST", "/login", pages::login),
    ("POST", "/login/magic-link", pages::login_magic_link),
    ("GET", "/login/2fa", pages::second_factor_form),
    ("POST", "/login/2fa", pages::second_factor),
    ("GET", "/login/setup-2fa", pages::setup_2fa_form),
    ("POST", "/login/setup-2fa", pages::setup_2fa),
    ("GET", "/login/select-org", pages::select_org_form),
    ("POST", "/login/select-org", pages::select_org),
    ("GET", "/login/continue", pages::continue_page),
    ("GET", "/signup", pages::signup_form),
    ("POST", "/signup", pages::signup),
    ("GET", "/forgot-password", pages::forgot_form),
    ("POST", "/forgot-password", pages::forgot),
    ("GET", "/reset-password", pages::reset_form),
    ("POST", "/reset-password", pages::reset),
    ("GET", "/magic-link", pages::magic_link_form),
    ("POST", "/magic-link", pages::magic_link),
    ("GET", "/verify-email", pages::verify_email_form),
    ("POST", "/verify-email", pages::verify_email),
    ("GET", "/invitations/accept", pages::invitation_form),
    ("POST", "/invitations/accept", pages::invitation),
    ("GET", "/account", account::show),
    ("POST", "/account/profile", account::profile),
    ("POST", "/account/password", account::password),
    ("POST", "/account/2fa/setup", account::totp_setup),
    ("POST", "/account/2fa/enable", account::totp_enable),
    ("POST", "/account/2fa/disable", account::totp_disable),
    ("POST", "/account/2fa/backup-codes", account::backup_codes),
    ("POST", "/account/sessions/revoke", account::revoke_session),
    ("POST", "/logout", pages::logout),
    ("GET", "/oauth2/authorize", oauth::authorize),
    ("POST", "/oauth2/authorize", oauth::authorize),
    ("POST", "/oauth2/authorize/decide", oauth::decide),
    ("GET", "/device", oauth::device_form),
    ("POST", "/device", oauth::device),
    ("GET", "/oauth2/logout", oauth::logout),
    ("POST", "/oauth2/logout", oauth::logout),
    ("GET", "/setup", pages::setup_form),
    ("POST", "/setup", pages::setup),
];

/// The language of a request (for the emails it queues): as the pages choose theirs.
pub fn request_language(req: &Request) -> &'static str {
    templates::negotiate(
        input::query(req, "lang").as_deref(),
        input::query(req, "ui_locales").as_deref(),
        input::cookie(req, LANG_COOKIE),
        req.header("Accept-Language"),
    )
    .unwrap_or("en")
}

/// Adds an error's own headers (`Retry-After`, `Allow`, …) to the page that shows it.
pub fn carry_headers(resp: &mut Response, e: &ApiError) {
    for (k, v) in &e.headers {
        resp.headers.push((k.clone().into(), v.clone().into()));
    }
    if let Some(secs) = e.retry_after {
        resp.headers
            .push(("Retry-After".into(), secs.to_string().into()));
    }
}

/// The signed-in person of a browser session.
pub struct Signed {
    pub session: BrowserSession,
    pub user: User,
}

/// Everything a page handler works with.
pub struct Page<'a> {
    pub state: &'a AppState,
    pub ctx: &'a Ctx,
    pub req: &'a Request,
    pub lang: &'static str,
    /// The browser's CSRF seed (from its cookie, or new: then set on the answer).
    csrf_seed: String,
    new_seed: bool,
    /// The browser session of the cookie, if live (active or pending the second factor).
    pub browser: Option<Signed>,
    /// The form fields of a POST.
    form: HashMap<String, String>,
    /// `Set-Cookie` values to add to the answer.
    cookies: Vec<String>,
    /// Origins besides our own that a form of this page may end at (CSP `form-action`):
    /// browsers apply it to the redirects after a POST too, so a sign-in that ends at an
    /// OAuth client needs that client's registered redirect origin.
    pub form_targets: Vec<String>,
}

/// Routes a request to its page, or None when no page has this path (then the API's 404).
pub fn dispatch(state: &AppState, ctx: &mut Ctx, req: &Request) -> Option<ApiResult<Response>> {
    let path = req.url();
    let method = req.method();
    let mut allowed = Vec::new();
    let mut found = None;
    for (m, p, f) in PAGES {
        if *p == path {
            if *m == method || (method == "HEAD" && *m == "GET") {
                found = Some((*p, *f));
                break;
            }
            allowed.push(*m);
        }
    }
    let Some((route, handler)) = found else {
        if allowed.is_empty() {
            return None;
        }
        return Some(Err(ApiError::of(ErrorCode::MethodNotAllowed)
            .with_message(format!("{method} is not allowed here"))
            .with_header("Allow", allowed.join(", "))));
    };
    ctx.route = route;
    let ctx: &Ctx = ctx;
    let mut page = Page::new(state, ctx, req);
    let result = (|| {
        if method == "POST" {
            page.read_form()?;
            // A relying party may POST its authorization request (OIDC Core §3.1.2.1): a
            // cross-site navigation without our token. It decides nothing by itself — the
            // person's own session and consent do — so it is the one form without CSRF.
            if route != "/oauth2/authorize" {
                page.check_csrf()?;
            }
        }
        handler(&mut page)
    })();
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            if e.status() >= 500 {
                state.log.error(
                    "page error",
                    &[
                        ("request_id", json!(ctx.request_id)),
                        ("detail", json!(e.detail.as_deref().unwrap_or(""))),
                    ],
                );
            }
            page.error_page(&e)
        }
    };
    page.finish(&mut resp);
    Some(Ok(resp))
}

impl<'a> Page<'a> {
    fn new(state: &'a AppState, ctx: &'a Ctx, req: &'a Request) -> Page<'a> {
        let seed = input::cookie(req, CSRF_COOKIE)
            .filter(|c| {
                c.len() == 43
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .map(str::to_string);
        let (csrf_seed, new_seed) = match seed {
            Some(s) => (s, false),
            None => (crypto::random_token(32), true),
        };
        let browser = input::cookie(req, SESSION_COOKIE)
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .and_then(|t| {
                state
                    .db
                    .read(|c| {
                        let Some(bs) = browser_sessions::find_by_token(c, &crypto::token_hash(t))?
                        else {
                            return Ok::<_, ApiError>(None);
                        };
                        Ok(users::find_by_id(c, &bs.user_id)?.map(|u| (bs, u)))
                    })
                    .ok()
                    .flatten()
            })
            .filter(|(bs, u)| bs.is_live(ctx.now) && u.status == UserStatus::Active)
            .map(|(session, user)| Signed { session, user });
        let mut page = Page {
            state,
            ctx,
            req,
            lang: "en",
            csrf_seed,
            new_seed,
            browser,
            form: HashMap::new(),
            cookies: Vec::new(),
            form_targets: Vec::new(),
        };
        page.lang = page.negotiate_lang();
        page
    }

    /// `?lang=` (remembered in a cookie), else `ui_locales`, else the cookie, else
    /// `Accept-Language`; English by default.
    fn negotiate_lang(&mut self) -> &'static str {
        let q = input::query(self.req, "lang");
        let chosen = templates::negotiate(q.as_deref(), None, None, None);
        if let Some(l) = chosen {
            self.cookies.push(self.cookie(LANG_COOKIE, l, 365 * 86_400));
            return l;
        }
        templates::negotiate(
            None,
            input::query(self.req, "ui_locales").as_deref(),
            input::cookie(self.req, LANG_COOKIE),
            self.req.header("Accept-Language"),
        )
        .unwrap_or("en")
    }

    /// A cookie of Latchkey's own origin (host-only, HttpOnly, SameSite=Lax; Secure unless
    /// `cookies.secure = false`).
    fn cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        let mut c = format!("{name}={value}; Path=/; Max-Age={max_age}; SameSite=Lax; HttpOnly");
        if self.state.config.cookies.secure {
            c.push_str("; Secure");
        }
        c
    }

    pub fn set_cookie(&mut self, name: &str, value: &str, max_age: i64) {
        let c = self.cookie(name, value, max_age);
        self.cookies.push(c);
    }

    /// The answer's cookies and the headers every page carries.
    fn finish(&mut self, resp: &mut Response) {
        if self.new_seed {
            let c = self.cookie(CSRF_COOKIE, &self.csrf_seed.clone(), 365 * 86_400);
            resp.headers.push(("Set-Cookie".into(), c.into()));
        }
        for c in self.cookies.drain(..) {
            resp.headers.push(("Set-Cookie".into(), c.into()));
        }
        let set = |resp: &mut Response, k: &str, v: &str| {
            crate::http::respond::set_header(resp, k, v.to_string())
        };
        let mut targets = std::mem::take(&mut self.form_targets);
        targets.extend(self.provider_redirect_origin());
        targets.sort();
        targets.dedup();
        let mut form_action = "'self'".to_string();
        for t in &targets {
            form_action.push(' ');
            form_action.push_str(t);
        }
        set(
            resp,
            "Content-Security-Policy",
            &format!(
                "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'none'; \
                 object-src 'none'; base-uri 'none'; form-action {form_action}; frame-ancestors 'none'"
            ),
        );
        set(resp, "X-Frame-Options", "DENY");
        set(resp, "Referrer-Policy", "no-referrer");
        if !resp
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("Cache-Control"))
        {
            set(resp, "Cache-Control", "no-store");
        }
    }

    /// The registered redirect origin of the OAuth client this page's sign-in may end at: the
    /// client of the authorization request itself (`/oauth2/authorize…`), or of the
    /// `return_to` the sign-in carries (form, query or the sign-in's cookie). Only an origin of
    /// a URI registered for that client, so `form-action` never names an arbitrary host.
    fn provider_redirect_origin(&self) -> Option<String> {
        let from_request = || -> Option<(String, String)> {
            let get = |k: &str| {
                Some(self.field(k))
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| self.query(k))
            };
            let id = get("client_id");
            (!id.is_empty()).then(|| (id, get("redirect_uri")))
        };
        let from_return_to = || -> Option<(String, String)> {
            let candidates = [
                self.field("return_to"),
                self.query("return_to"),
                self.next().1,
            ];
            let r = candidates
                .into_iter()
                .find(|r| r.starts_with("/oauth2/authorize?"))?;
            let q = r.split_once('?')?.1;
            let mut id = String::new();
            let mut uri = String::new();
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                match k.as_ref() {
                    "client_id" => id = v.into_owned(),
                    "redirect_uri" => uri = v.into_owned(),
                    _ => {}
                }
            }
            (!id.is_empty()).then_some((id, uri))
        };
        let (id, uri) = if self.req.url().starts_with("/oauth2/") {
            from_request()?
        } else {
            from_return_to()?
        };
        if id.len() > 128 || uri.len() > 2048 {
            return None;
        }
        let client = self
            .state
            .db
            .read(|c| crate::db::oauth::find_client(c, &id))
            .ok()??;
        if !client.redirect_uris.contains(&uri) {
            return None;
        }
        let origin = url::Url::parse(&uri).ok()?.origin();
        origin.is_tuple().then(|| origin.ascii_serialization())
    }

    /// The CSRF token of this browser's forms: an HMAC of its seed (and browser session).
    pub fn csrf(&self) -> String {
        let key = crypto::derive_key(self.state.secret(), "page-csrf");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
        mac.update(self.csrf_seed.as_bytes());
        mac.update(b"|");
        if let Some(b) = &self.browser {
            mac.update(b.session.id.as_bytes());
        }
        crypto::b64url(&mac.finalize().into_bytes())
    }

    /// A POST must come from our own origin (when the browser says where from) and carry this
    /// browser's CSRF token: else 403.
    fn check_csrf(&self) -> ApiResult<()> {
        let own = self.own_origin();
        let from = self.req.header("Origin").map(str::to_string).or_else(|| {
            self.req.header("Referer").and_then(|r| {
                url::Url::parse(r)
                    .ok()
                    .map(|u| u.origin().ascii_serialization())
            })
        });
        if let Some(o) = from
            && !o.eq_ignore_ascii_case(&own)
            && o != "null"
        {
            return Err(ApiError::of(ErrorCode::CsrfFailed).with_message("Cross-origin form post"));
        }
        let sent = self.field("csrf");
        if self.new_seed || !crypto::ct_eq(sent.as_bytes(), self.csrf().as_bytes()) {
            return Err(ApiError::of(ErrorCode::CsrfFailed).with_message(
                "The form expired or came from elsewhere; reload the page and try again",
            ));
        }
        Ok(())
    }

    fn own_origin(&self) -> String {
        url::Url::parse(&self.state.config.server.public_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }

    fn read_form(&mut self) -> ApiResult<()> {
        let ct = self.req.header("Content-Type").unwrap_or("");
        if !ct
            .as_bytes()
            .get(..33)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"application/x-www-form-urlencoded"))
        {
            return Err(ApiError::of(ErrorCode::UnsupportedMediaType)
                .with_message("Forms are sent as application/x-www-form-urlencoded"));
        }
        let bytes = input::body_bytes(self.req, self.state.config.server.max_body_bytes)?;
        for (k, v) in url::form_urlencoded::parse(&bytes) {
            if self.form.len() >= 32 {
                break;
            }
            self.form.insert(k.into_owned(), v.into_owned());
        }
        Ok(())
    }

    /// A form field ("" when absent).
    pub fn field(&self, name: &str) -> String {
        self.form.get(name).cloned().unwrap_or_default()
    }

    /// A query parameter ("" when absent).
    pub fn query(&self, name: &str) -> String {
        input::query(self.req, name).unwrap_or_default()
    }

    /// The org a page is for: `?org=` / the form's `org`, else the deployment's only org.
    pub fn org(&self) -> ApiResult<Option<Org>> {
        let slug = match self.field("org") {
            s if !s.is_empty() => s,
            _ => self.query("org"),
        };
        if !slug.is_empty() {
            if slug.len() > 64 {
                return Err(ApiError::org_not_found());
            }
            return self
                .state
                .db
                .read(|c| orgs::find_by_slug(c, slug.trim()))?
                .map(Some)
                .ok_or_else(ApiError::org_not_found);
        }
        let mut all = self.state.db.read(|c| orgs::list(c, None, 2))?;
        Ok(if all.len() == 1 { all.pop() } else { None })
    }

    /// The signed-in (second factor done) person, if any.
    pub fn signed_in(&self) -> Option<&Signed> {
        self.browser
            .as_ref()
            .filter(|b| b.session.is_active(self.ctx.now))
    }

    /// Renders `template` with the common context plus `extra` (a JSON object).
    pub fn render(
        &self,
        status: u16,
        template: &str,
        org: Option<&Org>,
        extra: Value,
    ) -> ApiResult<Response> {
        let mut ctx = json!({
            "lang": self.lang,
            "csrf": self.csrf(),
            "product": "Latchkey",
            "org": org.map(|o| json!({ "name": o.name, "slug": o.slug, "logo_url": o.logo_url })),
            "org_slug": org.map(|o| o.slug.clone()),
            "signed_in": self.signed_in().map(|s| json!({ "email": s.user.email, "name": s.user.name })),
        });
        if let (Some(m), Value::Object(e)) = (ctx.as_object_mut(), extra) {
            for (k, v) in e {
                m.insert(k, v);
            }
        }
        let html = self
            .state
            .ui
            .render(template, self.lang, ctx)
            .map_err(|e| ApiError::internal(format!("template {template}: {e}")))?;
        Ok(Response::html(html).with_status_code(status))
    }

    /// A translated text of the pages' language.
    pub fn t(&self, key: &str) -> String {
        self.state.ui.text(self.lang, key)
    }

    /// The message page: a heading, a message and an optional link (all by i18n key or text).
    pub fn message(
        &self,
        status: u16,
        org: Option<&Org>,
        heading: &str,
        message: &str,
        link: Option<(&str, &str)>,
    ) -> ApiResult<Response> {
        self.render(
            status,
            "message.html",
            org,
            json!({
                "heading": self.t(heading),
                "message": self.t(message),
                "link_url": link.map(|l| l.0),
                "link_text": link.map(|l| self.t(l.1)),
            }),
        )
    }

    /// The page of a link that no longer works (`message`: the i18n key saying which).
    pub fn link_invalid(&self, message: &str) -> ApiResult<Response> {
        self.message(
            400,
            None,
            "msg.heading_link_invalid",
            message,
            Some(("/login", "common.back_to_login")),
        )
    }

    /// What an error looks like on a page: the translated message of its code.
    pub fn error_text(&self, e: &ApiError) -> String {
        let key = format!("msg.{}", e.code);
        let text = self.t(&key);
        if text == key { e.message.clone() } else { text }
    }

    fn error_page(&self, e: &ApiError) -> Response {
        let heading = match e.status() {
            403 => self.t("msg.heading_forbidden"),
            404 => self.t("msg.heading_not_found"),
            429 => self.t("msg.heading_slow_down"),
            s if s >= 500 => self.t("msg.heading_broken"),
            _ => self.t("msg.heading_problem"),
        };
        let message = if e.status() >= 500 {
            self.t("msg.internal_error")
        } else {
            self.error_text(e)
        };
        let mut resp = self
            .render(
                e.status(),
                "error.html",
                None,
                json!({ "status": e.status(), "heading": heading, "message": message }),
            )
            .unwrap_or_else(|_| {
                Response::text(format!("{} {}", e.status(), e.message)).with_status_code(e.status())
            });
        carry_headers(&mut resp, e);
        resp
    }

    /// A 303 to `to` (a path of ours or an allowed URL).
    pub fn redirect(&self, to: &str) -> Response {
        Response::redirect_303(to.to_string())
    }

    /// Starts a browser session for `user` and sets its cookie; `pending` while the second
    /// factor is due. Returns the new session.
    pub fn start_browser_session(
        &mut self,
        user: &User,
        amr: &[String],
        pending: bool,
    ) -> ApiResult<BrowserSession> {
        let token = crypto::random_token(32);
        let id = crate::ids::new_id("bs", self.ctx.now);
        let now = self.ctx.now;
        let expires = if pending {
            now + self.state.config.tokens.partial_ttl.as_millis() as i64
        } else {
            now + session_ttl(self.state)
        };
        let ip = self.ctx.ip.to_string();
        let ua = self.ctx.user_agent(self.req);
        // A new sign-in replaces whatever session this browser had.
        if let Some(old) = self.browser.take() {
            let (ctx, req) = (self.ctx, self.req);
            self.state.change(ctx, req, |tx| {
                crate::flows::account::end_browser_session(
                    tx,
                    ctx,
                    req,
                    &old.user,
                    &old.session.id,
                    "replaced",
                )
            })?;
        }
        self.state.db.write(|tx| {
            browser_sessions::insert(
                tx,
                &id,
                &crypto::token_hash(&token),
                &user.id,
                if pending {
                    BrowserState::PendingSecondFactor
                } else {
                    BrowserState::Active
                },
                amr,
                &ip,
                ua.as_deref(),
                now,
                expires,
            )
        })?;
        let max_age = (expires - now) / 1000;
        self.set_cookie(SESSION_COOKIE, &token, max_age);
        // What was just written: no need to read it back.
        let bs = BrowserSession {
            id,
            user_id: user.id.clone(),
            state: if pending {
                BrowserState::PendingSecondFactor
            } else {
                BrowserState::Active
            },
            auth_methods: amr.to_vec(),
            failed_codes: 0,
            auth_time: now,
            created_at: now,
            expires_at: expires,
            revoked_at: None,
        };
        self.browser = Some(Signed {
            session: bs.clone(),
            user: user.clone(),
        });
        Ok(bs)
    }

    /// Where the sign-in goes on: `(org slug, return_to)` from its cookie.
    pub fn next(&self) -> (String, String) {
        let raw = input::cookie(self.req, NEXT_COOKIE).unwrap_or("");
        let mut org = String::new();
        let mut ret = String::new();
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            match k.as_ref() {
                "org" => org = v.into_owned(),
                "return_to" => ret = v.into_owned(),
                _ => {}
            }
        }
        (org, ret)
    }

    pub fn set_next(&mut self, org: &str, return_to: &str) {
        let v: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("org", org)
            .append_pair("return_to", return_to)
            .finish();
        // The cookie value must not hold ';' or ','; the serializer percent-encodes them.
        self.set_cookie(NEXT_COOKIE, &v, 1800);
    }

    pub fn clear_next(&mut self) {
        self.set_cookie(NEXT_COOKIE, "", 0);
    }

    /// `return_to` if it may be followed: a path of ours, or an http(s) URL whose host is the
    /// org's (trusted) `appUrl` host or on `security.allowed_app_hosts`. Anything else is
    /// ignored (no open redirect).
    pub fn safe_return_to(&self, return_to: &str, org: Option<&Org>) -> Option<String> {
        let r = return_to.trim();
        if r.is_empty() || r.len() > 2048 {
            return None;
        }
        if r.starts_with('/')
            && !r.starts_with("//")
            && !r.starts_with("/\\")
            && !r.contains(['\r', '\n'])
        {
            return Some(r.to_string());
        }
        let url = url::Url::parse(r).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let host = url.host_str()?.to_ascii_lowercase();
        let app_host = org
            .and_then(|o| crate::api::links::trusted_app_url(self.state, o))
            .and_then(|a| url::Url::parse(a).ok())
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        if app_host.as_deref() == Some(host.as_str()) || self.state.config.app_host_allowed(&host) {
            Some(url.to_string())
        } else {
            None
        }
    }
}
