"""Harness of the browser tests: a real `latchkey serve` on 127.0.0.1 with a temporary
directory, a real SMTP sink (aiosmtpd) it sends to, the operator API to seed orgs and users,
and Debian's headless Chromium driven by Playwright.

Environment: LATCHKEY_BIN (the binary; run.sh sets it), BROWSER_TESTS_OUT (screenshots,
default tests/browser/out), CHROMIUM (default /usr/bin/chromium).
"""

import email
import email.policy
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT = Path(os.environ.get("BROWSER_TESTS_OUT", HERE / "out"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "browser-tests-secret-0123456789abcdef0123456789abcdef"
PASSWORD = "Correct-Horse-Battery-42"

# Short waits: every page is local, so anything slower than this is a failure worth seeing.
ACTION_TIMEOUT_MS = 10_000
NAV_TIMEOUT_MS = 15_000


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# SMTP sink
# ---------------------------------------------------------------------------------------------


class Mail:
    def __init__(self, seq, rcpt, raw):
        self.seq = seq
        self.to = [r.lower() for r in rcpt]
        self.msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.subject = str(self.msg.get("Subject", ""))
        part = self.msg.get_body(preferencelist=("plain",))
        self.text = part.get_content() if part is not None else ""
        part = self.msg.get_body(preferencelist=("html",))
        self.html = part.get_content() if part is not None else ""

    def token_link(self):
        """The link carrying `?token=` in the plain-text part."""
        m = re.search(r"https?://[^\s<>\"']+[?&]token=[^\s<>\"')\]]+", self.text)
        assert m, f"no ?token= link in the plain-text part of {self.subject!r}:\n{self.text}"
        return m.group(0)

    def __repr__(self):
        return f"<Mail #{self.seq} to={self.to} subject={self.subject!r}>"


class MailSink:
    """Collects every message Latchkey sends over SMTP."""

    def __init__(self):
        self.port = free_port()
        self.mails = []
        self.cond = threading.Condition()
        self._seq = itertools.count(1)
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        with self.cond:
            self.mails.append(Mail(next(self._seq), envelope.rcpt_tos, envelope.content))
            self.cond.notify_all()
        return "250 OK"

    def start(self):
        self.controller.start()

    def stop(self):
        self.controller.stop()

    def mark(self, address=None):
        """The sequence number of the newest mail so far: pass it to `expect(after=)`."""
        with self.cond:
            return self.mails[-1].seq if self.mails else 0

    def for_address(self, address):
        a = address.lower()
        with self.cond:
            return [m for m in self.mails if a in m.to]

    def expect(self, address, after=0, timeout=20.0):
        """The newest mail to `address` newer than `after`, waiting for it to arrive."""
        a = address.lower()
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [m for m in self.mails if a in m.to and m.seq > after]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(m.to, m.subject) for m in self.mails[-10:]]
                    raise AssertionError(
                        f"no email to {address} within {timeout}s (last mails: {got})"
                    )
                self.cond.wait(left)

    def link(self, address, after=0, timeout=20.0):
        return self.expect(address, after=after, timeout=timeout).token_link()


# ---------------------------------------------------------------------------------------------
# The server and the operator API
# ---------------------------------------------------------------------------------------------


class ApiError(AssertionError):
    pass


class Site:
    """A running Latchkey and the calls the tests seed it with."""

    _ids = itertools.count(1)

    def __init__(self, binary, workdir, mail):
        self.binary = binary
        self.dir = Path(workdir)
        self.mail = mail
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = self.dir / "latchkey.toml"
        self.log_path = OUT / "server.log"
        self.proc = None
        self.admin_key = None
        self.run_id = f"{os.getpid() % 10000}{int(time.time()) % 100000}"

    # -- lifecycle ---------------------------------------------------------------------------

    def config_text(self):
        return f"""
[server]
bind = "127.0.0.1:{self.port}"
public_url = "{self.base}"
threads = 8

[database]
path = "{self.dir / 'latchkey.db'}"

[security]
secret_key = "{SECRET}"
allowed_origins = ["{self.base}"]
allowed_app_hosts = ["app.test"]
login_ip_per_minute = 100000
email_per_hour = 1000
email_ip_per_hour = 100000

[cookies]
secure = false

[argon2]
memory_kib = 64
iterations = 1
parallelism = 1

[email]
transport = "smtp"
from = "Latchkey <no-reply@example.com>"

[email.smtp]
host = "127.0.0.1"
port = {self.mail.port}
tls = "off"
timeout = "10s"

[webhooks]
allow_http = true

[log]
level = "info"
"""

    def start(self):
        self.config.write_text(self.config_text())
        self.config.chmod(0o600)
        out = subprocess.run(
            [self.binary, "admin-key", "create", "--name", "t", "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, f"admin-key create failed: {out.stderr}"
        m = re.search(r"sk_admin_[0-9a-f]+", out.stdout)
        assert m, f"admin-key create printed no key: {out.stdout!r}"
        self.admin_key = m.group(0)

        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"latchkey serve exited with {self.proc.returncode}:\n"
                    + self.log_path.read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("latchkey serve did not answer /healthz within 60 s")
            time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def url(self, path):
        return self.base + path

    # -- HTTP --------------------------------------------------------------------------------

    def request(self, method, path, body=None, headers=None):
        """A JSON request → (status, parsed body or text, headers)."""
        h = {"Accept": "application/json"}
        h.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url(path), data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw, hdrs = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, raw, hdrs = e.code, e.read(), e.headers
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return status, parsed, hdrs

    def api(self, method, path, body=None, token=None, org=None, admin=False, expect=None):
        """A call to /api/v1 → `data` of the envelope; raises unless the status is `expect`
        (default: any 2xx)."""
        h = {}
        if admin:
            h["Authorization"] = f"Bearer {self.admin_key}"
        elif token:
            h["Authorization"] = f"Bearer {token}"
        if org:
            h["X-Org-Slug"] = org
        status, parsed, _ = self.request(method, "/api/v1" + path, body, h)
        ok = (status == expect) if expect else 200 <= status < 300
        if not ok:
            raise ApiError(f"{method} {path} → {status}: {parsed}")
        if isinstance(parsed, dict) and "data" in parsed:
            return parsed["data"]
        return parsed

    # -- seeding -----------------------------------------------------------------------------

    def unique(self, prefix):
        return f"{prefix}-{self.run_id}-{next(self._ids)}"

    def email(self, prefix="user", domain="example.com"):
        return f"{self.unique(prefix)}@{domain}"

    def create_org(self, prefix="org", name=None, **fields):
        """An org through POST /admin/orgs; `fields` go in the body (settings, logoUrl…)."""
        slug = self.unique(prefix)
        body = {"slug": slug, "name": name or f"{prefix.title()} {slug[-4:]}"}
        body.update(fields)
        data = self.api("POST", "/admin/orgs", body, admin=True)
        return data["org"]

    def create_user(self, prefix="user", password=PASSWORD, verified=True, name=None,
                    email_addr=None, org=None, role="member"):
        """A user through POST /admin/users, seated in `org` (a slug) when given."""
        addr = email_addr or self.email(prefix)
        body = {"email": addr, "name": name or prefix.title() + " Tester",
                "isEmailVerified": verified}
        if password is not None:
            body["password"] = password
        user = self.api("POST", "/admin/users", body, admin=True)["user"]
        user["password"] = password
        if org:
            self.add_member(org, user["id"], role)
        return user

    def add_member(self, org_slug, user_id, role="member"):
        return self.api("POST", f"/admin/orgs/{org_slug}/members",
                        {"userId": user_id, "role": role}, admin=True)

    def login_api(self, email_addr, password, org):
        """An access token from POST /auth/login (a user without 2FA)."""
        data = self.api("POST", "/auth/login", {"email": email_addr, "password": password},
                        org=org)
        assert "accessToken" in data, f"login did not finish: {data}"
        return data["accessToken"]

    def enable_totp_api(self, token, org, totp_codes):
        """Turns TOTP on through the API → (secret, backup codes)."""
        setup = self.api("POST", "/auth/2fa/setup", token=token, org=org)
        secret = setup["secret"]
        codes = self.api("POST", "/auth/2fa/enable", {"code": totp_codes.code(secret)},
                         token=token, org=org)["backupCodes"]
        return secret, codes

    def invite(self, token, org, email_addr, role="member", **extra):
        body = {"email": email_addr, "role": role}
        body.update(extra)
        return self.api("POST", "/org/members/invite", body, token=token, org=org)


class TotpCodes:
    """TOTP codes that are never replayed: each call gives a code of a later time step than the
    last one used for that secret (Latchkey refuses a code accepted once, and accepts ±1 step)."""

    def __init__(self):
        self.last = {}

    def code(self, secret):
        import pyotp

        t = pyotp.TOTP(secret)
        now_step = int(time.time()) // 30
        step = max(now_step, self.last.get(secret, -1) + 1)
        if step > now_step + 1:
            # Two codes already used in this window: wait until the next step begins.
            time.sleep((step - 1) * 30 - time.time() + 0.5)
        self.last[secret] = step
        return t.at(step * 30)


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


def _binary():
    b = os.environ.get("LATCHKEY_BIN")
    if not b:
        for cand in (
            Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug" / "latchkey",
            REPO / "target" / "debug" / "latchkey",
        ):
            if cand.exists():
                b = str(cand)
                break
    if not b or not Path(b).exists():
        pytest.exit("no latchkey binary: set LATCHKEY_BIN or pass it to run.sh", returncode=2)
    return b


@pytest.fixture(scope="session")
def mail():
    sink = MailSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def site(mail):
    OUT.mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix="latchkey-browser-")
    s = Site(_binary(), work, mail)
    try:
        s.start()
        yield s
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def totp():
    return TotpCodes()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.exit(f"{CHROMIUM} is missing: run tests/browser/setup.sh", returncode=2)
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()
    pw.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


class Shots:
    """Full-page screenshots named by test and step: out/<test>/<nn>-<step>.png."""

    def __init__(self, test_name):
        self.dir = OUT / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def __call__(self, page, step):
        self.n += 1
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", step).strip("-")
        path = self.dir / f"{self.n:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shot(request):
    return Shots(request.node.name)


@pytest.fixture
def new_context(browser, site, shot, request):
    """A factory of fresh browser contexts (one per person/device); each page opened in one is
    screenshotted if the test fails, and its console errors are written beside the shots."""
    made = []
    console = []

    def make(**kw):
        opts = dict(base_url=site.base, viewport={"width": 1100, "height": 800},
                    locale="en-US")
        opts.update(kw)
        ctx = browser.new_context(**opts)
        ctx.set_default_timeout(ACTION_TIMEOUT_MS)
        ctx.set_default_navigation_timeout(NAV_TIMEOUT_MS)
        ctx.on("page", lambda p: p.on(
            "console", lambda m: console.append(f"{m.type}: {m.text} ({p.url})")
            if m.type in ("error", "warning") else None))
        made.append(ctx)
        return ctx

    yield make

    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for i, ctx in enumerate(made):
            for j, p in enumerate(ctx.pages):
                try:
                    p.screenshot(path=str(shot.dir / f"FAILED-ctx{i}-page{j}.png"),
                                 full_page=True)
                except Exception:
                    pass
    if console:
        (shot.dir / "console.txt").write_text("\n".join(console) + "\n")
    for ctx in made:
        try:
            ctx.close()
        except Exception:
            pass


@pytest.fixture
def page(new_context):
    ctx = new_context()
    p = ctx.new_page()
    return p
