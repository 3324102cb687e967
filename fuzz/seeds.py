#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*) from the test
suite's requests: the JSON bodies its tests send (`json!({...})` beside a path), the forms the
page tests post, the raw requests of the connection-layer tests, the configs of the config
tests, plus a few hand-made inputs per target. The committed corpus is these seeds merged with
what long runs found (`bench/fuzz.sh --merge`, docs/fuzzing.md); rerun this after adding tests
(seeds are named by content hash, so rerunning only adds), then merge.

    python3 fuzz/seeds.py
"""

import glob
import hashlib
import json
import os
import re
import struct
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
CONSTANTS = {"PASSWORD": "correct horse battery staple", "SECRET": "test-secret-key-0123456789abcdef0123456789abcdef"}


def write(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def rust_json(text):
    """The JSON of a `json!` macro's argument, Rust expressions replaced by strings."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "{}[]:,":
            out.append(c)
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif c == "r" and text.startswith('r#"', i):
            j = text.index('"#', i + 3)
            out.append(json.dumps(text[i + 3:j]))
            i = j + 2
        else:
            m = re.match(r"-?\d+(\.\d+)?([eE][-+]?\d+)?\b|true\b|false\b|null\b", text[i:])
            if m and not text[i + m.end():].lstrip().startswith((".", "(", "[")):
                out.append(m.group(0))
                i += m.end()
                continue
            # A Rust expression: up to the next top-level `,` `}` `]`.
            depth, j = 0, i
            while j < n:
                ch = text[j]
                if ch == '"':
                    k = j + 1
                    while k < n and text[k] != '"':
                        k += 2 if text[k] == "\\" else 1
                    j = k + 1
                    continue
                if ch in "([{":
                    depth += 1
                elif ch in ")]}":
                    if depth == 0:
                        break
                    depth -= 1
                elif ch == "," and depth == 0:
                    break
                j += 1
            expr = text[i:j].strip().lstrip("&*")
            out.append(json.dumps(CONSTANTS.get(expr, "x")))
            i = j
    s = "".join(out)
    s = re.sub(r",\s*([}\]])", r"\1", s)
    return json.loads(s)


def balanced(text, start):
    """text[start] is an opening bracket; the index after its match."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack, i = [], start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in pairs:
            stack.append(pairs[c])
        elif stack and c == stack[-1]:
            stack.pop()
            if not stack:
                return i + 1
        i += 1
    return len(text)


def test_requests():
    """(method, path, json body or None) of the tests' API calls."""
    reqs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "*.rs"))):
        src = open(path).read()
        for m in re.finditer(r'(?:"(GET|POST|PUT|PATCH|DELETE)",\s*)?&?(?:format!\()?"(/(?:api|\.well-known|healthz|readyz)[^"]*)"', src):
            method, p = m.group(1), re.sub(r"\{[^}]*\}", "x", m.group(2))
            window = src[m.end():m.end() + 400]
            body = None
            j = window.find("json!(")
            stop = window.find(";")
            if j >= 0 and (stop < 0 or j < stop):
                k = m.end() + j + len("json!")
                try:
                    body = rust_json(src[k + 1:balanced(src, k) - 1])
                except (ValueError, IndexError):
                    body = None
            reqs.append((method or ("POST" if body is not None else "GET"), p, body))
    return reqs


def test_forms():
    """(path, urlencoded body) of the page tests' form posts."""
    forms = []
    src = open(os.path.join(ROOT, "tests", "pages.rs")).read()
    for m in re.finditer(r'\.(?:submit|post)\(\s*(?:"[^"]*"\s*,\s*)?"(/[^"]*)"\s*,\s*&\[', src):
        end = balanced(src, m.end() - 1)
        pairs = re.findall(r'\(\s*"([^"]*)"\s*,\s*([^)]*?)\s*\)', src[m.end():end])
        fields = [("csrf", "@CSRF@")]
        for k, v in pairs:
            v = v.strip().lstrip("&")
            v = v[1:-1] if v.startswith('"') and v.endswith('"') else CONSTANTS.get(v, "x")
            fields.append((k, v))
        forms.append((m.group(1), urllib.parse.urlencode(fields).replace("%40CSRF%40", "@CSRF@")))
    return forms


def unescape_rust_bytes(s):
    out, i = bytearray(), 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            c = s[i + 1]
            if c == "x":
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\", '"': b'"', "'": b"'"}.get(c, c.encode())
            i += 2
        else:
            out += s[i].encode()
            i += 1
    return bytes(out)


def raw_requests():
    reqs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "*.rs"))):
        src = open(path).read()
        for m in re.finditer(r'b"((?:[A-Z]+) /(?:[^"\\]|\\.)*HTTP/1\.[01](?:[^"\\]|\\.)*)"', src):
            reqs.append(unescape_rust_bytes(m.group(1)))
    return reqs


def http(method, path, headers, body):
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for k, v in headers:
        head += f"{k}: {v}\r\n"
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


def chunked(body, sizes=(5, 3, 100)):
    out, i, k = b"", 0, 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        out += b"%x\r\n" % len(body[i:i + n]) + body[i:i + n] + b"\r\n"
        i, k = i + n, k + 1
    return out + b"0\r\n\r\n"


def main():
    api_reqs = test_requests()
    forms = test_forms()
    raws = raw_requests()
    seed8 = lambda x: struct.pack("<Q", x)  # noqa: E731

    # Raw requests: the connection-layer tests' own, and each API call as a client sends it.
    wire = list(raws)
    for method, path, body in api_reqs:
        b = json.dumps(body).encode() if body is not None else None
        hs = [("X-Org-Slug", "acme"), ("Authorization", "Bearer x")]
        if b is not None:
            hs.append(("Content-Type", "application/json"))
        wire.append(http(method, path, hs, b))
        if b is not None and len(wire) % 5 == 0:
            wire.append(http(method, path, hs + [("Transfer-Encoding", "chunked")], None) + chunked(b))
    for path, body in forms:
        wire.append(http("POST", path, [("Content-Type", "application/x-www-form-urlencoded")], body.encode()))
    wire = list(dict.fromkeys(wire))
    for i, w in enumerate(wire):
        for target in ("http_parse", "http_read"):
            write(target, seed8(0x100 * (i % 2) + 0x5eed0000 * (i + 1)) + w)
    for body in [b'{"email":"a@b.test","password":"x"}', b"Wikipedia in\r\n\r\nchunks.", b"x" * 300]:
        write("http_parse", seed8(7) + chunked(body))
        write("http_parse", seed8(0x100) + chunked(body, (1, 16)) + b"GET / HTTP/1.1\r\n\r\n")
    write("http_read", seed8(3) + b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.0\r\n\r\n")
    write("http_read", seed8(0x105) + b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"hello world") + b"GET / HTTP/1.1\r\n\r\n")

    # The api target: template byte, media byte, two address bytes, query NUL body.
    api_src = open(os.path.join(ROOT, "fuzz", "fuzz_targets", "api.rs")).read()
    templates = re.findall(r'\(\s*"(GET|POST|PUT|DELETE)",\s*"([^"]+)",\s*Cred::(\w+),\s*Media::(\w+),?\s*\)', api_src)
    index = {(m, p.replace("{user}", "x")): i for i, (m, p, _, _) in enumerate(templates)}
    raw_route = len(templates)
    n = 0
    for method, path, body in api_reqs:
        p, _, q = path.partition("?")
        b = json.dumps(body).encode() if body is not None else b""
        key = (method, p.replace("/api/v1/admin/users/x", "/api/v1/admin/users/x"))
        if key in index:
            data = bytes([index[key], 0, n % 256, n // 256 % 256]) + q.encode() + b"\0" + b
        else:
            data = bytes([raw_route, 0, n % 256, n // 256 % 256]) + f"{method} {path}".encode() + b"\0" + b
        write("api", data)
        n += 1
    for path, body in forms:
        p, _, q = path.partition("?")
        if ("POST", p) in index:
            write("api", bytes([index[("POST", p)], 0, n % 256, 0]) + q.encode() + b"\0" + body.encode())
            n += 1
    for body in [b'{"refreshToken":"@REFRESH@"}', b"{}"]:
        write("api", bytes([index[("POST", "/api/v1/auth/refresh")], 0, 1, 1]) + b"\0" + body)
    write("api", bytes([index[("POST", "/api/v1/public/verify")], 0, 1, 2]) + b"\0" + b'{"token":"@ACCESS@"}')
    write("api", bytes([index[("GET", "/api/v1/admin/users")], 0, 1, 3]) + b"limit=1&cursor=abc.def\0")

    # request_inputs: seed (which headers are present), then url and header values by NUL.
    for i, (method, path, body) in enumerate(api_reqs[:200]):
        fields = [path, "application/json", f"access_token=x; csrf_token=y; latchkey_lang=de",
                  "Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln", "203.0.113.7, 127.0.0.1", "curl/8.0 \xe9",
                  "de-DE,de;q=0.9,en;q=0.8", "http://app.test", "https://app.test/x", "y",
                  f"req-{i}", "acme", json.dumps(body) if body is not None else ""]
        write("request_inputs", seed8(0xFFFFFFFF if i % 2 else 0x7FF) + "\0".join(fields).encode())
    write("request_inputs", seed8(1) + b"/x\0application\xff\xfe/json")

    # jwt: mode 0 any string, 1 claims of the input's, 2 a genuine token edited, 3 a header
    # of the input's, 4 a JWK.
    for tok in [b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", b"a.b.c", b"eyJhbGciOiJFZERTQSIsImtpZCI6IngifQ.e30.AAAA"]:
        write("jwt", b"\0" + tok)
    write("jwt", b"\x01" + seed8(5) + b"\0".join([b"usr_1", b"jti", b"ses_1", b"org_1", b"acme", b"member", b"a@b.test", b"pwd", b"edit"]))
    for i in range(5):
        write("jwt", b"\x02" + seed8(i | (i << 60)) + b"edit")
    write("jwt", b"\x03" + seed8(1) + b'{"alg":"none","kid":"k"}')
    for jwk in [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
                {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                 "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
                {"kty": "RSA", "n": "sXch", "e": "AQAB", "alg": "RS256", "use": "sig"}]:
        write("jwt", b"\x04" + json.dumps(jwk).encode())

    # cursor: position seed, then an id.
    for c in [b"MTIzOm9yZ19Y.AAAAAAAAAAAAAAAAAAAAAA", b"garbage", b".", b"MTIz.", b"usr_01J0000000000000000000000"]:
        write("cursor", seed8(1_700_000_000_000) + c)

    # config: the example, the embedded default, and the configs of the tests.
    write("config", seed8(0) + open(os.path.join(ROOT, "config.example.toml"), "rb").read())
    cfg_src = open(os.path.join(ROOT, "src", "config.rs")).read()
    m = re.search(r'pub const DEV_DEFAULT: &str = r#"(.*?)"#;', cfg_src, re.S)
    if m:
        write("config", seed8(2) + m.group(1).encode())
    secret = '\n[security]\nsecret_key = "0123456789abcdef0123456789abcdef-test-secret"\n'
    paths = [os.path.join(ROOT, "src", "config", "tests.rs")] + sorted(glob.glob(os.path.join(ROOT, "tests", "*.rs")))
    for path in paths:
        src = open(path).read()
        for m in re.finditer(r'r#"(.*?)"#', src, re.S):
            if "[" in m.group(1) and "=" in m.group(1):
                write("config", seed8(1) + m.group(1).encode())
        # The config tests' fragments, as their `parse` completes them.
        for m in re.finditer(r'"(\[[a-z_.]+\](?:[^"\\]|\\.)*)"', src):
            text = unescape_rust_bytes(m.group(1))
            if b"[security]" not in text:
                text += secret.encode()
            write("config", seed8(0) + text)

    for t in sorted(os.listdir(CORPUS)):
        print(f"{t}: {len(os.listdir(os.path.join(CORPUS, t)))} seeds")


if __name__ == "__main__":
    main()
