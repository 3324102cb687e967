"""Shared pieces of the WorkOS SDK harness: configuration from the environment, the redirect-URI
listener, the browser that signs in on the target's hosted pages, TOTP codes, and the optional
Latchkey-only fixtures (orgs that require 2FA or email verification, the rehash check).

Also a command line for the Node harness, which has no browser of its own:
    python wk.py signin  AUTHORIZE_URL EMAIL PASSWORD   -> prints {"code":…, "state":…}
    python wk.py approve VERIFICATION_URL EMAIL PASSWORD -> prints {"ok":true, "url":…}
    python wk.py special-org KIND                        -> prints {"id": org id or null}
    python wk.py password-hash ID                        -> prints {"hash_prefix": …}
"""

import json
import os
import secrets
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("WORKOS_OUT_DIR", HERE / "out"))

BASE_URL = os.environ.get("WORKOS_BASE_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ.get("WORKOS_API_KEY", "")
CLIENT_ID = os.environ.get("WORKOS_CLIENT_ID", "")
REDIRECT_URI = os.environ.get("WORKOS_REDIRECT_URI", "http://127.0.0.1:8765/callback")
LOGOUT_RETURN_TO = os.environ.get("WORKOS_LOGOUT_RETURN_TO", REDIRECT_URI)
TARGET = os.environ.get("WORKOS_TARGET", "latchkey")
ADMIN_KEY = os.environ.get("LATCHKEY_ADMIN_KEY", "")
LATCHKEY_DB = os.environ.get("LATCHKEY_DB", "")
ROLE = os.environ.get("WORKOS_ROLE_SLUG", "member")
ROLE_ALT = os.environ.get("WORKOS_ROLE_SLUG_ALT", "admin")
RUN = os.environ.get("WORKOS_RUN_ID") or secrets.token_hex(4)
PASSWORD = os.environ.get("WORKOS_TEST_PASSWORD", "Harness-pw-7731-quartz")
EMAIL_DOMAIN = os.environ.get("WORKOS_EMAIL_DOMAIN", "example.com")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def email(tag):
    return f"{tag}-{RUN}@{EMAIL_DOMAIN}"


# --- the redirect URI: a listener on loopback that records what arrives ---------------------

class Callback:
    """Listens on REDIRECT_URI's host and port; every request is recorded and answered 200."""

    def __init__(self, uri=REDIRECT_URI):
        u = urllib.parse.urlsplit(uri)
        self.uri = uri
        self.hits = []
        self.event = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                if parts.path == (u.path or "/"):  # not the browser's /favicon.ico
                    q = dict(urllib.parse.parse_qsl(parts.query))
                    outer.hits.append({"path": self.path, "query": q})
                    outer.event.set()
                body = b"<!doctype html><title>harness callback</title><p>ok</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((u.hostname, u.port or 80), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- HTTP without following redirects --------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def get_no_redirect(url, headers=None):
    """(status, Location or None, body text) of one GET, redirects not followed."""
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=15) as r:
            return r.status, r.headers.get("Location"), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location"), e.read().decode("utf-8", "replace")


# --- the browser -----------------------------------------------------------------------------

def _shot(page, name):
    try:
        OUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUT / f"{TARGET}-{name}.png"), full_page=True)
    except Exception:
        pass


def browse(start_url, user_email, password, done, name="browser", max_pages=12):
    """Opens start_url in headless Chromium and acts as a person would on Latchkey's hosted pages
    (src/ui/templates): sign in (`email`, `password`), approve a consent or device request
    (`decision=approve`), confirm a device code (`user_code`), pick the first org. Returns the
    final URL when `done(url)` is true, or (with done=None) when no known form is left after an
    approval; raises otherwise."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(15000)
            page.goto(start_url, wait_until="load")
            approved = False
            for _ in range(max_pages):
                if done is not None and done(page.url):
                    return page.url
                pw = page.locator('form:has(input[name="password"]):has(input[name="email"])')
                approve = page.locator('button[name="decision"][value="approve"]')
                org = page.locator('form[action^="/login/select-org"] button[name="org"]')
                code = page.locator('form:has(input[name="user_code"])')
                if pw.count():
                    form = pw.first
                    form.locator('input[name="email"]').fill(user_email)
                    form.locator('input[name="password"]').fill(password)
                    target = form.locator('button[type="submit"], button:not([type]), input[type="submit"]').first
                elif approve.count():
                    target = approve.first
                    approved = True
                elif org.count():
                    target = org.first
                elif code.count():
                    target = code.first.locator('button[type="submit"], button:not([type])').first
                else:
                    break
                before = page.url
                with page.expect_navigation(wait_until="load"):
                    target.click()
                alert = page.locator("[role=alert]")
                if alert.count() and page.url == before:
                    _shot(page, name)
                    raise AssertionError(f"the page shows an error at {page.url}: "
                                         f"{alert.first.inner_text()!r}")
            _shot(page, name)
            if done is None and approved:
                return page.url
            if done is None or not done(page.url):
                title = page.title()
                raise AssertionError(f"browser stopped at {page.url} ({title!r})")
            return page.url
        finally:
            browser.close()


def authorization_code(authorize_url, user_email, password, callback=None):
    """Follows an authorize URL to the redirect URI and returns its query ({code, state}).
    A target that redirects straight back (the emulator signs in its first/login_hint user)
    needs no browser; one that shows a sign-in page gets Playwright."""
    status, loc, _ = get_no_redirect(authorize_url)
    if status in (301, 302, 303, 307, 308) and loc and loc.startswith(REDIRECT_URI):
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
    own = callback is None
    cb = callback or Callback()
    try:
        n = len(cb.hits)
        browse(authorize_url, user_email, password, lambda u: u.startswith(REDIRECT_URI),
               name="authorize")
        cb.event.wait(5)
        if len(cb.hits) <= n:
            raise AssertionError("the redirect URI was never called")
        return cb.hits[-1]["query"]
    finally:
        if own:
            cb.close()


def approve_device(verification_url, user_email, password):
    """Signs in at the device verification page (`verification_uri_complete`) and approves the
    request; returns the URL of the page reached after approving."""
    return browse(verification_url, user_email, password, None, name="device")


# --- TOTP ------------------------------------------------------------------------------------

_used_codes = {}


def totp_code(secret):
    """A code the server has not seen yet for this secret: now, else the next or previous step
    (RFC 6238 ±1 step), else wait for a fresh step (Latchkey refuses a replayed code)."""
    import pyotp

    t = pyotp.TOTP(secret)
    used = _used_codes.setdefault(secret, set())
    while True:
        now = time.time()
        for off in (0, 30, -30):
            c = t.at(now + off)
            if c not in used:
                used.add(c)
                return c
        time.sleep(30 - now % 30 + 0.5)


# --- Latchkey-only fixtures ------------------------------------------------------------------

def admin(method, path, body=None):
    """Latchkey's operator API (§7), answered in Latchkey's envelope; returns `data`."""
    req = urllib.request.Request(
        BASE_URL + "/api/v1/admin" + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.loads(r.read() or b"{}").get("data")


SPECIAL = {
    # an org whose members must have a second factor: password sign-in of a member without
    # one answers 403 mfa_enrollment
    "mfa": {"require2FA": True},
    # an org where the address is the credential: an unverified member's password sign-in
    # answers 403 email_verification_required
    "verify": {"signupMode": "domain", "allowedDomains": [EMAIL_DOMAIN]},
}
_special_cache = {}


def special_org(kind):
    """The id of an org with SPECIAL[kind]'s policy: WORKOS_<KIND>_ORG_ID, else one made now
    through Latchkey's admin API (LATCHKEY_ADMIN_KEY), else None (WorkOS's API has no way to set
    these policies)."""
    if kind in _special_cache:
        return _special_cache[kind]
    oid = os.environ.get(f"WORKOS_{kind.upper()}_ORG_ID") or None
    if not oid and ADMIN_KEY:
        data = admin("POST", "/orgs", {"slug": f"h-{kind}-{RUN}", "name": f"Harness {kind} {RUN}",
                                       "settings": SPECIAL[kind]})
        oid = (data.get("org") or data)["id"]
    _special_cache[kind] = oid
    return oid


def password_hash_prefix(user_id):
    """The stored hash's scheme for a user (Latchkey's database, LATCHKEY_DB), or None."""
    if not LATCHKEY_DB:
        return None
    con = sqlite3.connect(f"file:{LATCHKEY_DB}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT password_hash FROM users WHERE id = ?", (user_id,)).fetchone()
    finally:
        con.close()
    if not row or not row[0]:
        return ""
    h = row[0]
    return h[: h.find("$", 1) + 1] if h.startswith("$") else h[:8]


def main(argv):
    cmd = argv[1]
    if cmd == "signin":
        print(json.dumps(authorization_code(argv[2], argv[3], argv[4])))
    elif cmd == "approve":
        print(json.dumps({"ok": True, "url": approve_device(argv[2], argv[3], argv[4])}))
    elif cmd == "special-org":
        print(json.dumps({"id": special_org(argv[2])}))
    elif cmd == "password-hash":
        print(json.dumps({"hash_prefix": password_hash_prefix(argv[2])}))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
