//! Templates and languages of the hosted pages: minijinja templates embedded in the binary,
//! each overridable by a file of the same name in `[ui] templates_dir`, and the texts of
//! `i18n/<lang>.json` behind the templates' `t("key", name=value)`. A broken override fails
//! at load (so `check-config` and `serve` refuse it), never at a user's request.

use minijinja::value::Kwargs;
use minijinja::{Environment, State, Value};
use std::collections::HashMap;
use std::path::Path;

/// The languages of the pages, the first being the fallback.
pub const LANGS: &[&str] = &["en", "de"];

/// (name, embedded source) of every template.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("login_2fa.html", include_str!("templates/login_2fa.html")),
    ("setup_2fa.html", include_str!("templates/setup_2fa.html")),
    (
        "backup_codes.html",
        include_str!("templates/backup_codes.html"),
    ),
    ("select_org.html", include_str!("templates/select_org.html")),
    ("signup.html", include_str!("templates/signup.html")),
    (
        "forgot_password.html",
        include_str!("templates/forgot_password.html"),
    ),
    (
        "reset_password.html",
        include_str!("templates/reset_password.html"),
    ),
    ("magic_link.html", include_str!("templates/magic_link.html")),
    (
        "verify_email.html",
        include_str!("templates/verify_email.html"),
    ),
    ("invitation.html", include_str!("templates/invitation.html")),
    ("account.html", include_str!("templates/account.html")),
    ("setup.html", include_str!("templates/setup.html")),
    ("message.html", include_str!("templates/message.html")),
    (
        "oauth_consent.html",
        include_str!("templates/oauth_consent.html"),
    ),
    ("device.html", include_str!("templates/device.html")),
    (
        "oauth_logout.html",
        include_str!("templates/oauth_logout.html"),
    ),
    ("error.html", include_str!("templates/error.html")),
    ("email.txt", include_str!("templates/email.txt")),
    ("email.html", include_str!("templates/email.html")),
];

thread_local! {
    /// The language of the request being handled (for the emails it queues).
    static REQUEST_LANG: std::cell::Cell<&'static str> = const { std::cell::Cell::new("en") };
}

/// Runs `f` with `lang` as the language of the emails it queues (the request pipeline sets it
/// from the request, as the pages choose theirs).
pub fn with_request_lang<T>(lang: &'static str, f: impl FnOnce() -> T) -> T {
    let old = REQUEST_LANG.with(|l| l.replace(lang));
    let out = f();
    REQUEST_LANG.with(|l| l.set(old));
    out
}

/// The language of the request being handled.
pub fn request_lang() -> &'static str {
    REQUEST_LANG.with(|l| l.get())
}

/// A language of ours from `?lang=`, `ui_locales`, the language cookie or `Accept-Language`.
pub fn negotiate(
    query_lang: Option<&str>,
    ui_locales: Option<&str>,
    cookie: Option<&str>,
    accept: Option<&str>,
) -> Option<&'static str> {
    let pick = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        LANGS
            .iter()
            .copied()
            .find(|l| s == *l || s.starts_with(&format!("{l}-")))
    };
    if let Some(l) = query_lang.and_then(pick) {
        return Some(l);
    }
    if let Some(l) = ui_locales.and_then(|v| v.split_whitespace().find_map(pick)) {
        return Some(l);
    }
    if let Some(l) = cookie.and_then(pick) {
        return Some(l);
    }
    let mut langs: Vec<(f32, &str)> = accept?
        .split(',')
        .filter_map(|part| {
            let mut it = part.split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((q, tag))
        })
        .collect();
    langs.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    langs.iter().find_map(|(_, t)| pick(t))
}

/// An email's three parts, rendered from `email.txt` / `email.html`.
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The pages' texts, then the server's messages (errors and notices) of each language.
const TEXTS: &[(&str, &str)] = &[
    ("en", include_str!("i18n/en.json")),
    ("de", include_str!("i18n/de.json")),
    ("en", include_str!("i18n/messages.en.json")),
    ("de", include_str!("i18n/messages.de.json")),
];

/// The stylesheet, served at `/assets/style.css`.
pub const STYLESHEET: &str = include_str!("assets/style.css");

type Texts = HashMap<&'static str, HashMap<String, String>>;

pub struct Ui {
    env: Environment<'static>,
    texts: std::sync::Arc<Texts>,
}

impl Ui {
    /// The embedded templates, with the files of `dir` (if given) replacing those of the same
    /// name. Every template is compiled now: an error names the file.
    pub fn load(dir: Option<&Path>) -> Result<Ui, String> {
        let mut texts: Texts = HashMap::new();
        for (lang, src) in TEXTS {
            let map: HashMap<String, String> =
                serde_json::from_str(src).map_err(|e| format!("i18n/{lang}.json: {e}"))?;
            texts.entry(lang).or_default().extend(map);
        }
        let texts = std::sync::Arc::new(texts);
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        for (name, src) in TEMPLATES {
            let source = match dir.map(|d| d.join(name)) {
                Some(p) if p.is_file() => {
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?
                }
                _ => src.to_string(),
            };
            env.add_template_owned(name.to_string(), source)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        let t = texts.clone();
        env.add_function(
            "t",
            move |state: &State, key: &str, kwargs: Kwargs| -> Result<String, minijinja::Error> {
                let lang = state
                    .lookup("lang")
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "en".into());
                let mut text = lookup(&t, &lang, key);
                for arg in kwargs.args() {
                    let v: Value = kwargs.get(arg)?;
                    text = text.replace(&format!("{{{arg}}}"), &v.to_string());
                }
                Ok(text)
            },
        );
        let ui = Ui { env, texts };
        // Compile every template now (an override's syntax error is found at load).
        for (name, _) in TEMPLATES {
            ui.env
                .get_template(name)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(ui)
    }

    pub fn render(
        &self,
        name: &str,
        lang: &str,
        ctx: serde_json::Value,
    ) -> Result<String, minijinja::Error> {
        let mut ctx = ctx;
        ctx["lang"] = serde_json::Value::String(lang.to_string());
        self.env
            .get_template(name)?
            .render(Value::from(minijinja::value::Serde(&ctx)))
    }

    /// Renders the email of `kind` (`reset`, `magic_link`, `verify`, `invitation`): its
    /// subject (`email.<kind>.subject`), plain-text part (which carries `url` as is) and HTML
    /// part, in `lang`. `vars` adds `inviter`, `app_url`, `logo_url`.
    pub fn email(
        &self,
        kind: &str,
        lang: &str,
        org_name: &str,
        url: &str,
        vars: serde_json::Value,
    ) -> Result<RenderedEmail, minijinja::Error> {
        let subject = self
            .text(lang, &format!("email.{kind}.subject"))
            .replace("{org}", org_name);
        let mut ctx = serde_json::json!({
            "kind": kind, "org_name": org_name, "url": url, "subject": subject,
            "inviter": "", "app_url": null, "logo_url": null,
        });
        if let serde_json::Value::Object(v) = vars {
            for (k, x) in v {
                ctx[k] = x;
            }
        }
        Ok(RenderedEmail {
            text: self.render("email.txt", lang, ctx.clone())?,
            html: self.render("email.html", lang, ctx)?,
            subject,
        })
    }

    /// The text of `key` in `lang`, else English, else the key itself.
    pub fn text(&self, lang: &str, key: &str) -> String {
        lookup(&self.texts, lang, key)
    }
}

fn lookup(texts: &Texts, lang: &str, key: &str) -> String {
    texts
        .get(lang)
        .and_then(|m| m.get(key))
        .or_else(|| texts.get("en").and_then(|m| m.get(key)))
        .cloned()
        .unwrap_or_else(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `t("…")` key of every template exists in every language.
    #[test]
    fn every_language_has_every_key_the_templates_use() {
        let mut missing = Vec::new();
        for (name, src) in TEMPLATES {
            for part in src.split("t(\"").skip(1) {
                let key = part.split('"').next().unwrap_or("");
                if key.ends_with('.') {
                    continue; // a key built from a variable: checked below
                }
                for lang in LANGS {
                    let found = TEXTS.iter().filter(|(l, _)| l == lang).any(|(_, text)| {
                        serde_json::from_str::<HashMap<String, String>>(text)
                            .unwrap()
                            .contains_key(key)
                    });
                    if !found {
                        missing.push(format!("{lang}: {key} ({name})"));
                    }
                }
            }
        }
        missing.dedup();
        assert!(missing.is_empty(), "missing texts: {missing:#?}");
    }

    /// Every email kind has its four texts in every language, and renders.
    #[test]
    fn every_email_kind_renders_in_every_language() {
        let ui = Ui::load(None).unwrap();
        for kind in ["reset", "magic_link", "verify", "invitation"] {
            for part in ["subject", "intro", "action", "validity"] {
                for lang in LANGS {
                    let key = format!("email.{kind}.{part}");
                    let found = TEXTS.iter().filter(|(l, _)| l == lang).any(|(_, t)| {
                        serde_json::from_str::<HashMap<String, String>>(t)
                            .unwrap()
                            .contains_key(&key)
                    });
                    assert!(found, "{lang}: {key}");
                }
            }
            let m = ui
                .email(
                    kind,
                    "de",
                    "Acme <b>",
                    "https://x.test/p?token=abc",
                    serde_json::json!({ "inviter": "Ann" }),
                )
                .unwrap();
            assert!(m.text.contains("https://x.test/p?token=abc"), "{}", m.text);
            assert!(m.html.contains("Acme &lt;b&gt;"), "escaped: {}", m.html);
            assert!(
                !m.text.contains("&lt;"),
                "the text part is not HTML-escaped"
            );
        }
    }

    /// Every `msg.*` key the Rust side uses exists in every language.
    #[test]
    fn every_language_has_every_message_the_pages_use() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("pages.rs"),
            include_str!("account.rs"),
            include_str!("oauth.rs"),
        ];
        let ui = Ui::load(None).unwrap();
        for src in sources {
            for part in src.split("\"msg.").skip(1) {
                let key = format!("msg.{}", part.split('"').next().unwrap_or(""));
                if key == "msg." || key.contains('{') {
                    continue;
                }
                for lang in LANGS {
                    let t = ui.text(lang, &key);
                    assert_ne!(t, key, "{lang}: {key}");
                }
            }
        }
    }

    #[test]
    fn the_embedded_templates_compile() {
        Ui::load(None).unwrap();
    }
}
