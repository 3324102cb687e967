#!/usr/bin/env python3
"""Black-box fuzzer of raw HTTP/1.1 requests against a running Latchkey (issue 18).

Starts `latchkey serve` (a release build) on 127.0.0.1 with a temporary database, gives it an
org, a user, tokens and an API key, then for --seconds sends mutated raw requests from
--clients threads, each on a fresh loopback connection. A finding is any answer 5xx other
than 503, a panic or backtrace in the server's log, or a server that no longer answers a
normal request at the end. Findings are written to --out (the raw request, to replay with
`nc`), and the exit status is 1 if there was any.

    bench/rawfuzz.py --seconds 600 [--binary target/release/latchkey] [--clients 2] [--seed N]

Python 3 standard library only; loopback only.
"""

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter

PASSWORD = "correct horse battery staple"
SECRET = "rawfuzz-secret-key-0123456789abcdef0123456789abcdef"

# Values that have broken parsers before: invalid UTF-8, multi-byte characters at every
# offset, overlong and huge numbers, separators, control bytes.
INTERESTING = [
    b"", b" ", b"\xff", b"\xfe\xff", b"\xc3", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x92\xa9",
    b"\xed\xa0\x80", b"\xc0\xaf", b"\x00", b"\x7f", b"\x1b[2J", b"\t", b";", b",", b"=", b"\"",
    b"%", b"%zz", b"%00", b"%ff", b"%c3%a9", b"+", b"..", b"/", b"//", b"\\", b"?", b"#", b"&",
    b"-1", b"0", b"00000000000000000001", b"18446744073709551616", b"9" * 40, b"1e308",
    b"A" * 300, b"\xe9" * 70, b"application/", b"application\xff\xfe/json", b"+json",
    b"Bearer ", b"bearer\t", b"Basic ", b"null", b"[]", b"{}", b"{\"a\":", b"\"\\ud800\"",
    b"0x10", b"chunked", b"gzip, chunked", b"100-continue", b"close", b"keep-alive",
]

HEADER_NAMES = [
    b"Content-Type", b"Content-Length", b"Transfer-Encoding", b"Cookie", b"Authorization",
    b"X-Org-Slug", b"X-Forwarded-For", b"X-Request-Id", b"Accept-Language", b"User-Agent",
    b"Origin", b"Referer", b"X-CSRF-Token", b"X-API-Key", b"Expect", b"Connection", b"Host",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def config_text(dir_, port):
    return f"""
[server]
bind = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
threads = 4
read_timeout = "2s"
idle_timeout = "5s"
trusted_proxies = ["127.0.0.1"]

[database]
path = "{dir_}/rawfuzz.db"

[security]
secret_key = "{SECRET}"
allowed_origins = ["http://app.test"]
allowed_app_hosts = ["app.test"]

[cookies]
secure = false

[argon2]
memory_kib = 64
iterations = 1
parallelism = 1

[log]
level = "info"
"""


class Server:
    def __init__(self, binary, dir_):
        self.port = free_port()
        self.dir = dir_
        self.cfg = os.path.join(dir_, "latchkey.toml")
        with open(self.cfg, "w") as f:
            f.write(config_text(dir_, self.port))
        env = dict(os.environ)
        env.pop("LATCHKEY_SECRET_KEY", None)
        env.pop("LATCHKEY_PANIC_BACKTRACE", None)
        self.env = env
        self.binary = binary
        self.admin = subprocess.run(
            [binary, "--config", self.cfg, "admin-key", "create", "--name", "rawfuzz"],
            check=True, capture_output=True, text=True, env=env,
        ).stdout.strip()
        self.log_path = os.path.join(dir_, "server.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--config", self.cfg, "serve"], stdout=self.log, stderr=self.log, env=env
        )
        deadline = time.time() + 20
        while True:
            try:
                if self.get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"server did not come up; log: {self.log_path}")
            time.sleep(0.05)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path):
        with urllib.request.urlopen(self.url(path), timeout=5) as r:
            return r.status, r.read()

    def json(self, method, path, body, headers=None):
        req = urllib.request.Request(
            self.url(path), method=method, data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def bootstrap(srv):
    """An org, its owner, tokens and an API key: what the seed requests carry."""
    admin = {"Authorization": f"Bearer {srv.admin}"}
    st, _ = srv.json("POST", "/api/v1/admin/orgs",
                     {"slug": "acme", "name": "Acme", "settings": {"signupMode": "open"}}, admin)
    assert st == 201, st
    st, u = srv.json("POST", "/api/v1/admin/users",
                     {"email": "owner@acme.test", "password": PASSWORD, "name": "Owner",
                      "isEmailVerified": True}, admin)
    assert st == 201, st
    uid = u["data"]["user"]["id"]
    st, _ = srv.json("POST", "/api/v1/admin/orgs/acme/members", {"userId": uid, "role": "owner"}, admin)
    assert st == 201, st
    st, login = srv.json("POST", "/api/v1/auth/login",
                         {"email": "owner@acme.test", "password": PASSWORD}, {"X-Org-Slug": "acme"})
    assert st == 200, (st, login)
    access, refresh = login["data"]["accessToken"], login["data"]["refreshToken"]
    st, key = srv.json("POST", "/api/v1/org/api-keys", {"name": "rawfuzz"},
                       {"X-Org-Slug": "acme", "Authorization": f"Bearer {access}"})
    assert st == 201, st
    return {"admin": srv.admin, "access": access, "refresh": refresh,
            "api_key": key["data"]["key"], "user_id": uid}


def req(method, path, headers=(), body=None, version=b"HTTP/1.1"):
    lines = [method.encode() + b" " + path.encode() + b" " + version, b"Host: 127.0.0.1"]
    for k, v in headers:
        lines.append(k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()))
    if body is not None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        lines.append(b"Content-Length: " + str(len(body)).encode())
    out = b"\r\n".join(lines) + b"\r\n\r\n"
    return out + (body or b"")


def seeds(c):
    """Requests of the test suite's kinds: the JSON API with each credential, the pages'
    forms, framing variants."""
    org = [("X-Org-Slug", "acme")]
    j = [("Content-Type", "application/json")]
    owner = org + [("Authorization", "Bearer " + c["access"])]
    admin = [("Authorization", "Bearer " + c["admin"])]
    form = [("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", "latchkey_csrf=" + "f" * 43)]
    login = {"email": "owner@acme.test", "password": PASSWORD}
    s = [
        req("POST", "/api/v1/auth/login", org + j, login),
        req("POST", "/api/v1/auth/login", org + [("Content-Type", "application/json; charset=utf-8")], login),
        req("POST", "/api/v1/auth/signup", org + j, {"email": "new@acme.test", "password": PASSWORD, "name": "N"}),
        req("POST", "/api/v1/auth/refresh", org + j, {"refreshToken": c["refresh"]}),
        req("POST", "/api/v1/auth/refresh", org + [("Cookie", "refresh_token=" + c["refresh"]), ("Origin", "http://app.test")], b""),
        req("POST", "/api/v1/auth/logout", owner + j, {}),
        req("POST", "/api/v1/auth/is-available", org + j, {"email": "x@acme.test"}),
        req("POST", "/api/v1/auth/verify-2fa", org + j, {"partialToken": "x" * 43, "code": "123456"}),
        req("POST", "/api/v1/auth/forgot-password", org + j, {"email": "owner@acme.test"}),
        req("POST", "/api/v1/auth/reset-password", org + j, {"token": "t" * 43, "password": PASSWORD}),
        req("POST", "/api/v1/auth/magic-link/verify", org + j, {"token": "t" * 43}),
        req("POST", "/api/v1/invitations/accept", j, {"token": "t" * 43, "password": PASSWORD, "name": "I"}),
        req("GET", "/api/v1/auth/me", owner),
        req("PUT", "/api/v1/auth/me", owner + j, {"name": "Renamed"}),
        req("GET", "/api/v1/auth/sessions", owner),
        req("GET", "/api/v1/auth/audit?limit=5&cursor=abc.def", owner),
        req("GET", "/api/v1/org/members?limit=2", owner),
        req("POST", "/api/v1/org/members/invite", owner + j, {"email": "inv@acme.test", "role": "member"}),
        req("POST", "/api/v1/org/api-keys", owner + j, {"name": "k", "scopes": ["users:read"]}),
        req("POST", "/api/v1/org/webhooks", owner + j, {"url": "https://hooks.example.test/x", "events": ["user.login"]}),
        req("GET", "/api/v1/admin/orgs?limit=1", admin),
        req("POST", "/api/v1/admin/orgs", admin + j, {"slug": "globex", "name": "Globex"}),
        req("PUT", "/api/v1/admin/orgs/acme", admin + j, {"name": "Acme 2"}),
        req("GET", "/api/v1/admin/users/" + c["user_id"], admin),
        req("GET", "/api/v1/admin/audit?since=2026-01-01T00:00:00Z", admin),
        req("POST", "/api/v1/public/verify", [("X-API-Key", c["api_key"])] + j, {"token": c["access"]}),
        req("POST", "/api/v1/public/authenticate", [("X-API-Key", c["api_key"])] + j, login),
        req("GET", "/api/v1/public/users?email=owner%40acme.test", [("X-API-Key", c["api_key"])]),
        req("GET", "/.well-known/jwks.json"),
        req("GET", "/healthz", [("X-Request-Id", "seed-1")]),
        req("GET", "/api/v1/openapi.json", [("Accept-Language", "de-DE,de;q=0.9")]),
        req("GET", "/login?org=acme&return_to=https%3A%2F%2Fapp.test%2F&lang=de"),
        req("POST", "/login", form, b"csrf=" + b"f" * 43 + b"&email=owner%40acme.test&password=x&org=acme"),
        req("POST", "/signup", form, b"csrf=x&email=a%40b.test&password=p&name=n"),
        req("POST", "/forgot-password", form, b"email=owner%40acme.test"),
        req("GET", "/account", [("Cookie", "latchkey_session=abc; latchkey_lang=de")]),
        req("GET", "/setup"),
        # Framing: chunked, pipelined, 100-continue, HTTP/1.0, trailers.
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nX-Org-Slug: acme\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"ema\r\n1c;ext=1\r\nil\":\"a@b.test\",\"password\":\"\r\n3\r\nx\"}\r\n0\r\nX-T: 1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nX-Org-Slug: acme\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ]
    return s


def mutate(rng, data, corpus):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        # Header values are what handlers parse: one pick in four edits one in place.
        op = 12 if rng.random() < 0.25 else rng.randrange(12)
        n = len(data)
        if op == 0 and n:  # flip a byte
            i = rng.randrange(n)
            data[i] = rng.randrange(256)
        elif op == 1:  # insert an interesting value
            i = rng.randint(0, n)
            data[i:i] = rng.choice(INTERESTING)
        elif op == 2 and n:  # delete a range
            i = rng.randrange(n)
            del data[i:i + rng.randint(1, 16)]
        elif op == 3 and n:  # duplicate a range
            i = rng.randrange(n)
            data[i:i] = data[i:i + rng.randint(1, 64)]
        elif op == 4:  # splice another seed's tail
            other = rng.choice(corpus)
            i, k = rng.randint(0, n), rng.randint(0, len(other))
            data = data[:i] + other[k:]
        elif op == 5:  # add a header
            end = data.find(b"\r\n")
            if end > 0:
                h = rng.choice(HEADER_NAMES) + b": " + rng.choice(INTERESTING) + rng.choice(INTERESTING)
                data[end + 2:end + 2] = h + b"\r\n"
        elif op == 6:  # replace a header's value
            lines = bytes(data).split(b"\r\n")
            idx = [i for i, l in enumerate(lines) if b": " in l]
            if idx:
                i = rng.choice(idx)
                k = lines[i].split(b": ", 1)[0]
                lines[i] = k + b": " + rng.choice(INTERESTING) + rng.choice(INTERESTING)
                data = bytearray(b"\r\n".join(lines))
        elif op == 7:  # a wrong Content-Length
            data = bytearray(re.sub(rb"Content-Length: \d+", b"Content-Length: " +
                                    str(rng.choice([0, 1, 7, 100, 1 << 20, 1 << 21])).encode(), bytes(data), count=1))
        elif op == 8:  # the body as a different JSON shape
            i = data.find(b"\r\n\r\n")
            if i > 0:
                body = rng.choice([b"{}", b"[]", b"null", b"{\"email\":1}", b"{\"email\":\"\xff\"}",
                                   b"{\"a\":" * 200, b"\"" + b"\\u" * 10, b"{\"email\":\"a@b\",\"x\":[1e999]}"])
                data = bytearray(re.sub(rb"Content-Length: \d+", b"Content-Length: " + str(len(body)).encode(),
                                        bytes(data[:i]), count=1) + b"\r\n\r\n" + body)
        elif op == 9:  # percent-garbage in the target
            sp = data.find(b" ")
            if sp > 0:
                data[sp + 1:sp + 1] = rng.choice([b"/%ff%fe", b"/api/v1/%2e%2e/", b"/?cursor=%c3", b"/\xff", b"/api/v1/auth/me?lang=\xe9\xe9"])
        elif op == 10:  # a random X-Forwarded-For (the client IP behind the trusted proxy)
            end = data.find(b"\r\n")
            if end > 0:
                ip = ".".join(str(rng.randrange(256)) for _ in range(4)).encode()
                data[end + 2:end + 2] = b"X-Forwarded-For: " + rng.choice([ip, ip + b", 127.0.0.1", b"::" + ip, b"\xff" + ip]) + b"\r\n"
        elif op == 11 and n:  # truncate
            data = data[:rng.randrange(n)]
        elif op == 12:  # bytes inserted inside a header's value (a multi-byte or invalid
            # UTF-8 sequence at any offset: where a byte index can fall inside a character)
            head_end = data.find(b"\r\n\r\n")
            lines = bytes(data[:head_end if head_end > 0 else n]).split(b"\r\n")
            idx = [i for i, l in enumerate(lines) if b": " in l]
            if idx:
                i = rng.choice(idx)
                k, v = lines[i].split(b": ", 1)
                at = rng.randint(0, len(v))
                ins = rng.choice([b"\xff", b"\xfe\xff", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x92\xa9",
                                  b"\xc3", b"\xed\xa0\x80", bytes([rng.randrange(128, 256)]), b"\t", b";", b","])
                lines[i] = k + b": " + v[:at] + ins + v[at:]
                rest = bytes(data[head_end:]) if head_end > 0 else b""
                data = bytearray(b"\r\n".join(lines) + rest)
    return bytes(data)


def statuses(buf):
    """The status codes of the responses in `buf` (pipelined answers included)."""
    return [int(m.group(1)) for m in re.finditer(rb"(?:^|\r\n\r\n|\n)HTTP/1\.[01] (\d{3}) ", buf)]


def send(port, data, rng):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.settimeout(5)
        if rng.random() < 0.2 and len(data) > 1:  # in pieces
            i = rng.randrange(1, len(data))
            s.sendall(data[:i])
            time.sleep(0.002)
            s.sendall(data[i:])
        else:
            s.sendall(data)
        if rng.random() < 0.9:
            # Done sending: the server answers what it has, sees the end, and closes.
            s.shutdown(socket.SHUT_WR)
        else:
            # The connection stays open: read what comes within a short while (a partial
            # request gets its 408 after the server's read_timeout, which is not waited for).
            s.settimeout(0.3)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if len(out) > 4 << 20:
                break
        return out
    except (ConnectionResetError, BrokenPipeError):
        return None
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--binary", default=None)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None, help="findings directory (default: a temporary one)")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = args.binary or os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target")),
                                         "release", "latchkey")
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"no binary at {binary}: cargo build --release (or --binary)")
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    dir_ = tempfile.mkdtemp(prefix="latchkey-rawfuzz-")
    out_dir = args.out or os.path.join(dir_, "findings")
    os.makedirs(out_dir, exist_ok=True)
    srv = Server(binary, dir_)
    findings = []
    counts = Counter()
    lock = threading.Lock()
    try:
        creds = bootstrap(srv)
        corpus = seeds(creds)
        deadline = time.time() + args.seconds

        def client(i):
            rng = random.Random(seed * 1000 + i)
            while time.time() < deadline:
                data = mutate(rng, rng.choice(corpus), corpus)
                try:
                    out = send(srv.port, data, rng)
                except OSError as e:
                    with lock:
                        counts["connect_error"] += 1
                        if counts["connect_error"] > 50:
                            findings.append(("server unreachable: " + str(e), data))
                            return
                    time.sleep(0.05)
                    continue
                got = statuses(out or b"")
                with lock:
                    counts["requests"] += 1
                    if not got:
                        counts["no answer"] += 1
                    for st in got:
                        counts[st] += 1
                    bad = [st for st in got if 500 <= st <= 599 and st != 503]
                    if bad:
                        n = len(findings)
                        path = os.path.join(out_dir, f"finding-{n}-{bad[0]}.bin")
                        with open(path, "wb") as f:
                            f.write(data)
                        findings.append((f"status {bad[0]} ({path})", data))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        # The server still does its job.
        ok_health = srv.get("/healthz")[0] == 200
        st, _ = srv.json("POST", "/api/v1/auth/login", {"email": "owner@acme.test", "password": PASSWORD},
                         {"X-Org-Slug": "acme", "X-Forwarded-For": "192.0.2.200"})
        if not ok_health or st != 200:
            findings.append((f"after fuzzing: /healthz ok={ok_health}, login {st}", b""))
    finally:
        srv.stop()

    with open(srv.log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace").splitlines()
    bad_lines = [l for l in log if re.search(r"panicked|stack backtrace|RUST_BACKTRACE", l)]
    errors = [l for l in log if " ERROR " in l or '"level":"error"' in l]
    for l in bad_lines[:20]:
        findings.append(("log: " + l, b""))
    for l in errors[:20]:
        if l not in bad_lines:
            findings.append(("error log line: " + l, b""))

    n = counts.pop("requests", 0)
    hist = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))
    print(f"rawfuzz: seed {seed}, {args.clients} clients, {args.seconds:.0f} s, {n} requests "
          f"({n / max(args.seconds, 1):.0f}/s); answers: {hist}")
    print(f"rawfuzz: log {srv.log_path} ({len(log)} lines, {len(bad_lines)} panic lines, "
          f"{len(errors)} error lines)")
    if findings:
        print(f"rawfuzz: {len(findings)} findings (requests in {out_dir}):")
        for what, _ in findings[:50]:
            print("  " + what)
        sys.exit(1)
    print("rawfuzz: no findings" + ("" if args.out else "; temporary directory removed"))
    if not args.out:
        shutil.rmtree(dir_, ignore_errors=True)


if __name__ == "__main__":
    main()
