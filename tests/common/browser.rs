//! A browser without JavaScript over a test server: a cookie jar, forms posted as
//! application/x-www-form-urlencoded with the CSRF token of the page, redirects followed by
//! hand (tests/pages.rs, tests/oidc.rs).

use super::{Resp, TestServer};
use std::collections::HashMap;

/// A cookie jar over a test server.
pub struct Browser<'a> {
    pub s: &'a TestServer,
    pub jar: HashMap<String, String>,
    pub origin: String,
    pub lang: Option<String>,
}

impl<'a> Browser<'a> {
    pub fn new(s: &'a TestServer) -> Browser<'a> {
        Browser {
            s,
            jar: HashMap::new(),
            origin: "http://127.0.0.1".into(),
            lang: None,
        }
    }

    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h = Vec::new();
        if !self.jar.is_empty() {
            let c: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            h.push(("Cookie".into(), c.join("; ")));
        }
        if let Some(l) = &self.lang {
            h.push(("Accept-Language".into(), l.clone()));
        }
        h
    }

    pub fn keep(&mut self, r: &Resp) {
        for c in r.headers_named("Set-Cookie") {
            let first = c.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            if c.contains("Max-Age=0") {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_string(), v.to_string());
            }
        }
    }

    pub fn get(&mut self, path: &str) -> Resp {
        let r = self.s.raw("GET", path, &self.headers(), None);
        self.keep(&r);
        r
    }

    /// Posts `fields` (plus the CSRF token of `form_page`'s form) to `path`.
    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let mut h = self.headers();
        h.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        h.push(("Origin".into(), self.origin.clone()));
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let r = self.s.raw("POST", path, &h, Some(body.as_bytes()));
        self.keep(&r);
        r
    }

    /// GETs `page`, then posts its form's CSRF token with `fields` to `action`.
    pub fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Resp {
        let p = self.get(page);
        let csrf = csrf_of(&p);
        let mut all: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all)
    }
}

pub fn html(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

pub fn csrf_of(r: &Resp) -> String {
    let h = html(r);
    let i = h
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("a csrf field: {} {h}", r.status))
        + 19;
    h[i..].split('"').next().unwrap().to_string()
}

pub fn location(r: &Resp) -> &str {
    r.header("Location").unwrap_or("")
}
