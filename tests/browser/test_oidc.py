"""Latchkey as an OpenID Connect provider (API.md §13, issue 15) for client libraries nobody
here wrote: Python's authlib (`OAuth2Session`, `authlib.jose`) and Node's openid-client 6.9.0
(oidc_node/rp.mjs, run as a subprocess). Each is configured with the issuer URL, a client id
(and secret) and a redirect URI only; the rest comes from discovery. The person's part (sign-in,
TOTP, consent, the device page) happens in headless Chromium; the redirect URI is a tiny HTTP
server of the test on 127.0.0.1. Test names follow the OpenID Foundation's Basic OP test plan
(`oidcc-…`) where one fits; tests/oidc.rs covers the same ground over raw HTTP.
"""

import base64
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
from playwright.sync_api import expect

from conftest import OUT, PASSWORD, free_port
from lk import LOGIN_URL, expect_no_error, fill_login, form_to, navigate_by, submit_and_wait

# Latchkey runs on http://127.0.0.1 here: authlib refuses plain http without this.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
warnings.filterwarnings("ignore", message=".*authlib.jose module is deprecated.*")

from authlib.common.security import generate_token  # noqa: E402
from authlib.integrations.base_client import OAuthError  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from authlib.jose import JsonWebKey, JsonWebToken  # noqa: E402
from authlib.jose.errors import BadSignatureError  # noqa: E402
from authlib.oidc.core import CodeIDToken  # noqa: E402
from authlib.oidc.discovery import OpenIDProviderMetadata  # noqa: E402

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "oidc_node"
SCOPE = "openid profile email offline_access"
NODE_TIMEOUT = 60


# ---------------------------------------------------------------------------------------------
# The relying party's side: its redirect URI, its registration, the discovery document
# ---------------------------------------------------------------------------------------------


class App:
    """The client application's web server: answers every GET with a small page and keeps the
    paths it was asked for (so a test can tell the browser never came here)."""

    def __init__(self):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.redirect_uri = self.base + "/callback"
        self.seen = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                app.seen.append(self.path)
                body = (b"<!doctype html><title>Acme Portal</title>"
                        b"<h1>Acme Portal</h1><p>Back at the app.</p>")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path):
        return self.base + path

    def paths(self, prefix):
        return [p for p in self.seen if p.startswith(prefix)]


@pytest.fixture(scope="module")
def app():
    a = App()
    a.thread.start()
    yield a
    a.server.shutdown()
    a.server.server_close()


@pytest.fixture(scope="module")
def meta(site):
    r = requests.get(site.url("/.well-known/openid-configuration"), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def jwks(meta):
    r = requests.get(meta["jwks_uri"], timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def register(site, app, name="Acme Portal", **extra):
    """A client through POST /api/v1/admin/oauth-clients → (id, secret or None)."""
    body = {"name": name, "redirectUris": [app.redirect_uri],
            "postLogoutRedirectUris": [app.url("/bye")]}
    body.update(extra)
    data = site.api("POST", "/admin/oauth-clients", body, admin=True, expect=201)
    return data["client"]["id"], data.get("clientSecret")


@pytest.fixture(scope="module")
def portal(site, app):
    """A confidential third-party client (consent screen, client_secret_basic)."""
    return register(site, app)


def person(site, prefix, orgs=1):
    """A user seated in `orgs` new orgs → (user, [org, …])."""
    made = [site.create_org(f"{prefix}{i}", name=f"{prefix.title()} Org {'AB'[i]}")
            for i in range(orgs)]
    user = site.create_user(prefix, org=made[0]["slug"])
    for o in made[1:]:
        site.add_member(o["slug"], user["id"])
    return user, made


def query(url):
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def save_shot(page, name):
    """A screenshot at the top of out/ too, for the pages a person reviews by eye."""
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / name), full_page=True)


# Every flow runs with the pages' Content-Security-Policy enforced, as in every browser: its
# `form-action` names the client's registered redirect origin on the pages whose forms end there.
CSP_BLOCKS_REDIRECT_TO_CLIENT = False


@pytest.fixture
def page(new_context):
    return new_context(bypass_csp=CSP_BLOCKS_REDIRECT_TO_CLIENT).new_page()


# ---------------------------------------------------------------------------------------------
# The person's side, in Chromium
# ---------------------------------------------------------------------------------------------


def authorize_in_browser(page, shot, url, app, email=None, password=PASSWORD, totp_code=None,
                         org=None, step="authorize", consent_shot=None, expect_login=None):
    """Opens the authorization URL the library built and does what a person does — signs in
    (password, then TOTP if asked), picks `org` and approves on the consent page — until the
    browser lands on the app's redirect URI; returns that URL (code, state, iss)."""
    page.goto(url)
    logged_in = False
    for _ in range(8):
        page.wait_for_load_state("load")
        if page.url.startswith(app.redirect_uri):
            if expect_login is not None:
                assert logged_in == expect_login, (
                    f"expected the sign-in form {'' if expect_login else 'not '}to show")
            return page.url
        if LOGIN_URL.search(urlparse(page.url).path):
            assert email, f"asked to sign in at {page.url}"
            shot(page, f"{step}-login")
            f = fill_login(page, email, password)
            submit_and_wait(page, f)
            logged_in = True
        elif urlparse(page.url).path == "/login/2fa":
            assert totp_code, "asked for a TOTP code"
            shot(page, f"{step}-2fa")
            f = page.locator("form").filter(has=page.locator('[name="code"]')).first
            f.locator('[name="code"]').fill(totp_code())
            submit_and_wait(page, f)
        elif page.locator('form[action="/oauth2/authorize/decide"]').count():
            expect_no_error(page)
            shot(page, f"{step}-consent")
            if consent_shot:
                save_shot(page, consent_shot)
            if org:
                page.locator(f'input[name="organization"][value="{org}"]').check()
            approve = page.locator('button[name="decision"][value="approve"]')
            navigate_by(page, approve.click)
        else:
            shot(page, f"{step}-unexpected")
            raise AssertionError(f"unexpected page {page.url}:\n{page.locator('body').inner_text()}")
    raise AssertionError(f"never reached {app.redirect_uri}; at {page.url}")


# ---------------------------------------------------------------------------------------------
# authlib
# ---------------------------------------------------------------------------------------------


class AuthlibRP:
    """authlib's OAuth2Session set up from the discovery document with PKCE S256."""

    def __init__(self, meta, client, app, redirect_uri=None, pkce=True, **kw):
        self.meta = meta
        self.client_id, self.secret = client
        self.sess = OAuth2Session(
            self.client_id, self.secret, scope=kw.pop("scope", SCOPE),
            redirect_uri=redirect_uri or app.redirect_uri,
            code_challenge_method="S256" if pkce else None,
            token_endpoint_auth_method="client_secret_basic" if self.secret else "none",
        )
        self.verifier = generate_token(48)
        self.nonce = generate_token(20)

    def authorization_url(self, **params):
        params.setdefault("nonce", self.nonce)
        if self.sess.code_challenge_method:
            params["code_verifier"] = self.verifier
        url, self.state = self.sess.create_authorization_url(
            self.meta["authorization_endpoint"], **params)
        return url

    def fetch_token(self, callback):
        return self.sess.fetch_token(self.meta["token_endpoint"], authorization_response=callback,
                                     code_verifier=self.verifier)

    def id_claims(self, jwks, id_token, nonce=None, access_token=None, **params):
        """The id_token verified as an OpenID Connect RP must: signature against the JWKS
        (RS256 only), iss, aud, exp/iat, nonce, at_hash and auth_time (authlib's CodeIDToken)."""
        claims = JsonWebToken(["RS256"]).decode(
            id_token,
            JsonWebKey.import_key_set(jwks),
            claims_cls=CodeIDToken,
            claims_options={"iss": {"essential": True, "value": self.meta["issuer"]},
                            "aud": {"essential": True, "value": self.client_id},
                            "nonce": {"essential": True, "value": nonce or self.nonce},
                            "sub": {"essential": True}},
            claims_params={"nonce": nonce or self.nonce, "client_id": self.client_id,
                           "access_token": access_token, **params},
        )
        claims.validate(leeway=5)
        return claims

    def userinfo(self, method="GET", **kw):
        return self.sess.request(method, self.meta["userinfo_endpoint"], **kw)


def authlib_sign_in(page, shot, meta, client, app, user, jwks=None, **kw):
    """The whole code flow through authlib → (rp, token, verified id_token claims)."""
    rp = AuthlibRP(meta, client, app)
    callback = authorize_in_browser(page, shot, rp.authorization_url(), app,
                                    email=user["email"], **kw)
    q = query(callback)
    assert q.get("state") == rp.state and q.get("iss") == meta["issuer"], callback
    token = rp.fetch_token(callback)
    claims = rp.id_claims(jwks, token["id_token"], access_token=token["access_token"]) if jwks \
        else None
    return rp, token, claims


def test_oidcc_server_discovery_authlib_metadata(meta, site):
    """authlib's OpenIDProviderMetadata (OIDC Discovery 1.0 + RFC 8414) accepts the document."""
    OpenIDProviderMetadata(meta).validate()
    assert meta["issuer"] == site.base
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    for s in SCOPE.split():
        assert s in meta["scopes_supported"]
    for g in ("authorization_code", "refresh_token",
              "urn:ietf:params:oauth:grant-type:device_code"):
        assert g in meta["grant_types_supported"]
    for ep in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
               "revocation_endpoint", "introspection_endpoint", "end_session_endpoint",
               "device_authorization_endpoint"):
        assert meta[ep].startswith(site.base + "/"), ep
    r = requests.get(site.url("/.well-known/oauth-authorization-server"), timeout=10)
    assert r.status_code == 200 and r.json()["issuer"] == meta["issuer"]


def test_oidcc_server_authlib_code_flow_pkce_s256_consent_and_org(site, app, meta, jwks, portal,
                                                                   page, shot):
    """authlib builds the URL (PKCE S256, nonce, state); the person signs in, picks the second
    of their two orgs on the consent page and approves; the code becomes tokens for that org."""
    user, (a, b) = person(site, "authlib", orgs=2)
    rp, token, claims = authlib_sign_in(page, shot, meta, portal, app, user, jwks=jwks,
                                        org=b["slug"], consent_shot="oidc-consent.png")
    assert token["token_type"].lower() == "bearer"
    assert set(token["scope"].split()) == set(SCOPE.split())
    assert token.get("refresh_token")
    assert claims["email"] == user["email"]
    assert claims["org_slug"] == b["slug"] and claims["org_id"] == b["id"]
    assert claims["amr"] == ["pwd"]
    assert isinstance(claims["sid"], str) and isinstance(claims["auth_time"], int)
    assert app.paths("/callback?")
    # Asking again for the org consented to (`organization`): straight back with a code.
    rp2 = AuthlibRP(meta, portal, app)
    page.goto(rp2.authorization_url(organization=b["slug"]))
    assert page.url.startswith(app.redirect_uri) and "code=" in page.url, page.url
    again = rp2.id_claims(jwks, rp2.fetch_token(page.url)["id_token"])
    assert again["org_slug"] == b["slug"] and again["sub"] == claims["sub"]


def invalid_claim(err):
    """The claim authlib.jose refused (its errors come from joserfc underneath in 1.9)."""
    assert getattr(err, "error", None) == "invalid_claim", repr(err)
    m = re.search(r"claim: '(\w+)'", str(err))
    return m.group(1) if m else str(err)


def test_oidcc_idtoken_signature_authlib_jose(site, app, meta, jwks, portal, page, shot):
    """The id_token verifies with authlib.jose against the keys at jwks_uri (RS256, by kid);
    a tampered signature, a wrong nonce or a wrong audience is refused; the access token
    verifies offline against the same JWKS."""
    user, _ = person(site, "idsig")
    rp, token, claims = authlib_sign_in(page, shot, meta, portal, app, user, jwks=jwks)
    id_token = token["id_token"]
    header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
    assert header["alg"] == "RS256"
    kids = {k["kid"]: k for k in jwks["keys"]}
    assert header["kid"] in kids and kids[header["kid"]]["kty"] == "RSA"

    h, p, s = id_token.split(".")
    forged = f"{h}.{p}.{s[:-4]}{'AAAA' if s[-4:] != 'AAAA' else 'BBBB'}"
    with pytest.raises(BadSignatureError):
        rp.id_claims(jwks, forged)
    with pytest.raises(Exception) as e:
        rp.id_claims(jwks, id_token, nonce="not-the-nonce-sent")
    assert invalid_claim(e.value) == "nonce", e.value
    other = AuthlibRP(meta, ("client_someone_else", None), app)
    with pytest.raises(Exception) as e:
        other.id_claims(jwks, id_token, nonce=rp.nonce)
    assert invalid_claim(e.value) == "aud", e.value

    access = JsonWebToken(["EdDSA", "RS256"]).decode(
        token["access_token"], JsonWebKey.import_key_set(jwks),
        claims_options={"iss": {"essential": True, "value": meta["issuer"]}})
    access.validate(leeway=5)
    assert access["sub"] == claims["sub"]


def test_oidcc_userinfo_get_post_header_post_body_authlib(site, app, meta, portal, page, shot):
    user, (org,) = person(site, "userinfo")
    rp, token, _ = authlib_sign_in(page, shot, meta, portal, app, user)
    got = rp.userinfo("GET")
    assert got.status_code == 200, got.text
    info = got.json()
    assert info["email"] == user["email"] and info["sub"]
    posted = rp.userinfo("POST")
    assert posted.status_code == 200 and posted.json()["sub"] == info["sub"]
    body = requests.post(meta["userinfo_endpoint"], data={"access_token": token["access_token"]},
                         timeout=10)
    assert body.status_code == 200 and body.json()["sub"] == info["sub"]
    bad = requests.get(meta["userinfo_endpoint"], headers={"Authorization": "Bearer nope"},
                       timeout=10)
    assert bad.status_code == 401 and "invalid_token" in bad.headers.get("WWW-Authenticate", "")


def test_oidcc_totp_sign_in_authlib(site, app, meta, jwks, portal, page, shot, totp):
    """The account has TOTP on: Chromium gets the code page between password and consent, and
    the id_token's amr says both."""
    user, (org,) = person(site, "oidctotp")
    api_token = site.login_api(user["email"], user["password"], org["slug"])
    secret, _ = site.enable_totp_api(api_token, org["slug"], totp)
    rp, token, claims = authlib_sign_in(page, shot, meta, portal, app, user, jwks=jwks,
                                        totp_code=lambda: totp.code(secret))
    assert "pwd" in claims["amr"] and "otp" in claims["amr"], claims["amr"]
    assert claims["email"] == user["email"]


def test_oidcc_refresh_token_authlib(site, app, meta, jwks, portal, page, shot):
    user, _ = person(site, "refresh")
    rp, token, claims = authlib_sign_in(page, shot, meta, portal, app, user, jwks=jwks)
    first_refresh = token["refresh_token"]
    new = rp.sess.refresh_token(meta["token_endpoint"])
    assert new["access_token"] != token["access_token"]
    assert new["refresh_token"] and new["refresh_token"] != first_refresh  # rotated
    # OIDC Core 12.2: a refreshed id_token keeps iss, sub, aud and auth_time (and a nonce, if it
    # has one, is the original one).
    again = JsonWebToken(["RS256"]).decode(
        new["id_token"], JsonWebKey.import_key_set(jwks),
        claims_options={"iss": {"essential": True, "value": meta["issuer"]},
                        "aud": {"essential": True, "value": portal[0]},
                        "sub": {"essential": True, "value": claims["sub"]}})
    again.validate(leeway=5)
    assert again.get("nonce") in (None, rp.nonce)
    assert again["auth_time"] == claims["auth_time"]
    got = rp.userinfo()
    assert got.status_code == 200 and got.json()["sub"] == claims["sub"]


def test_authlib_revocation_and_introspection(site, app, meta, portal, page, shot):
    """RFC 7009 and RFC 7662 through authlib's revoke_token / introspect_token."""
    user, _ = person(site, "revoke")
    rp, token, _ = authlib_sign_in(page, shot, meta, portal, app, user)
    live = rp.sess.introspect_token(meta["introspection_endpoint"], token=token["access_token"],
                                    token_type_hint="access_token")
    assert live.status_code == 200 and live.json()["active"] is True, live.text
    assert live.json()["client_id"] == portal[0]
    r = rp.sess.revoke_token(meta["revocation_endpoint"], token=token["access_token"],
                             token_type_hint="access_token")
    assert r.status_code == 200, r.text
    assert rp.userinfo().status_code == 401
    dead = rp.sess.introspect_token(meta["introspection_endpoint"], token=token["access_token"])
    assert dead.json() == {"active": False}
    r = rp.sess.revoke_token(meta["revocation_endpoint"], token=token["refresh_token"],
                             token_type_hint="refresh_token")
    assert r.status_code == 200, r.text
    with pytest.raises(OAuthError) as e:
        rp.sess.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert e.value.error == "invalid_grant"
    # Revoking an unknown token is not an error (RFC 7009 §2.2).
    r = rp.sess.revoke_token(meta["revocation_endpoint"], token="not-a-token")
    assert r.status_code == 200


def test_oidcc_prompt_none_not_logged_in(app, meta, portal, page, shot):
    rp = AuthlibRP(meta, portal, app)
    page.goto(rp.authorization_url(prompt="none"))
    assert page.url.startswith(app.redirect_uri), page.url
    q = query(page.url)
    assert q["error"] == "login_required" and q["state"] == rp.state, q
    assert "code" not in q


def test_oidcc_prompt_login(site, app, meta, jwks, portal, page, shot):
    user, _ = person(site, "prompt")
    rp, _, first = authlib_sign_in(page, shot, meta, portal, app, user, jwks=jwks)
    time.sleep(1.2)
    # Signed in, consented: prompt=login shows the sign-in form all the same.
    rp2 = AuthlibRP(meta, portal, app)
    callback = authorize_in_browser(page, shot, rp2.authorization_url(prompt="login"), app,
                                    email=user["email"], step="again", expect_login=True)
    second = rp2.id_claims(jwks, rp2.fetch_token(callback)["id_token"])
    assert second["auth_time"] > first["auth_time"]
    assert second["sub"] == first["sub"]


def test_oidcc_max_age_1(site, app, meta, jwks, portal, page, shot):
    user, _ = person(site, "maxage")
    rp, _, first = authlib_sign_in(page, shot, meta, portal, app, user, jwks=jwks)
    time.sleep(2.2)
    rp2 = AuthlibRP(meta, portal, app)
    callback = authorize_in_browser(page, shot, rp2.authorization_url(max_age=1), app,
                                    email=user["email"], step="again", expect_login=True)
    # CodeIDToken checks auth_time is present when max_age was asked for.
    second = rp2.id_claims(jwks, rp2.fetch_token(callback)["id_token"], max_age=1)
    assert second["auth_time"] > first["auth_time"]
    # A max_age the sign-in still meets: straight back with a code.
    rp3 = AuthlibRP(meta, portal, app)
    callback = authorize_in_browser(page, shot, rp3.authorization_url(max_age=3600), app,
                                    expect_login=False)
    assert "code" in query(callback)


def test_oidcc_codereuse(site, app, meta, portal, page, shot):
    """A code works once; its second use fails and kills what the first one produced."""
    user, _ = person(site, "reuse")
    rp = AuthlibRP(meta, portal, app)
    callback = authorize_in_browser(page, shot, rp.authorization_url(), app, email=user["email"])
    token = rp.fetch_token(callback)
    assert rp.userinfo().status_code == 200
    with pytest.raises(OAuthError) as e:
        AuthlibRP(meta, portal, app).sess.fetch_token(
            meta["token_endpoint"], authorization_response=callback, code_verifier=rp.verifier,
            state=rp.state)
    assert e.value.error == "invalid_grant"
    r = requests.get(meta["userinfo_endpoint"],
                     headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10)
    assert r.status_code == 401


def test_oidcc_ensure_registered_redirect_uri(app, meta, portal, page, shot):
    """A redirect URI not registered exactly shows an error page and never sends the browser
    (with or without a code) there."""
    for bad in (app.url("/not-registered"), app.redirect_uri + "/"):
        rp = AuthlibRP(meta, portal, app, redirect_uri=bad)
        resp = page.goto(rp.authorization_url())
        shot(page, "unregistered-redirect-uri")
        assert resp.status == 400, resp.status
        assert urlparse(page.url).netloc == urlparse(meta["issuer"]).netloc, page.url
        assert not app.paths("/not-registered") and not app.paths("/callback/")


def test_pkce_required_and_only_s256_authlib(app, meta, portal, page, shot):
    """Without a code_challenge (authlib without code_challenge_method), or with `plain`, the
    app gets error=invalid_request back."""
    rp = AuthlibRP(meta, portal, app, pkce=False)
    page.goto(rp.authorization_url())
    q = query(page.url)
    assert page.url.startswith(app.redirect_uri) and q["error"] == "invalid_request", page.url
    assert q["state"] == rp.state
    rp = AuthlibRP(meta, portal, app, pkce=False)
    page.goto(rp.authorization_url(code_challenge=rp.verifier, code_challenge_method="plain"))
    assert query(page.url)["error"] == "invalid_request", page.url


def test_rp_initiated_logout(site, app, meta, jwks, portal, page, shot):
    """end_session_endpoint: with the person's id_token as hint and a registered
    post_logout_redirect_uri the browser session ends and the app gets its state back; without
    a hint the person confirms on Latchkey's page first."""
    user, _ = person(site, "logout")
    rp, token, _ = authlib_sign_in(page, shot, meta, portal, app, user, jwks=jwks)
    end = meta["end_session_endpoint"] + "?" + urlencode({
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": app.url("/bye"),
        "state": "bye-1"})
    page.goto(end)
    assert page.url == app.url("/bye?state=bye-1"), page.url
    assert rp.userinfo().status_code == 401
    # Signed out: the next authorization asks for the password again.
    rp2, _, _ = authlib_sign_in(page, shot, meta, portal, app, user, expect_login=True)
    page.goto(meta["end_session_endpoint"])
    expect(page.locator('form[action="/oauth2/logout"]')).to_be_visible()
    shot(page, "logout-confirm")
    save_shot(page, "oidc-logout.png")
    submit_and_wait(page, form_to(page, "/oauth2/logout"))
    shot(page, "logged-out")
    assert rp2.userinfo().status_code == 401


def test_forms_that_end_at_the_client_are_not_blocked_by_csp(site, app, meta, portal, new_context,
                                                            shot):
    """With the pages' CSP enforced, as in every browser: the consent form, the sign-in form
    (a first-party client, no consent) and the sign-out confirmation each reach the client."""
    user, _ = person(site, "csp")
    first_party = register(site, app, name="Acme Console", firstParty=True)
    blocked = []
    for name, client, step in (("consent form", portal, "consent"),
                               ("sign-in form", first_party, "login")):
        page = new_context().new_page()
        msgs = []
        page.on("console", lambda m: msgs.append(m.text) if "form-action" in m.text else None)
        rp = AuthlibRP(meta, client, app)
        try:
            authorize_in_browser(page, shot, rp.authorization_url(), app, email=user["email"],
                                 step=step)
        except Exception as e:
            blocked.append(f"{name}: {msgs or e}")
    page = new_context().new_page()
    msgs = []
    page.on("console", lambda m: msgs.append(m.text) if "form-action" in m.text else None)
    rp = AuthlibRP(meta, portal, app)
    try:
        authorize_in_browser(page, shot, rp.authorization_url(), app, email=user["email"],
                             step="for-logout")
        page.goto(meta["end_session_endpoint"] + "?" + urlencode(
            {"client_id": portal[0], "post_logout_redirect_uri": app.url("/bye"),
             "state": "csp"}))
        navigate_by(page, lambda: form_to(page, "/oauth2/logout").locator("button").click())
        assert page.url == app.url("/bye?state=csp"), page.url
    except Exception as e:
        blocked.append(f"sign-out confirmation: {msgs or e}")
    assert not blocked, "\n".join(blocked)


# ---------------------------------------------------------------------------------------------
# openid-client (Node)
# ---------------------------------------------------------------------------------------------


class NodeRP:
    """oidc_node/rp.mjs as a subprocess speaking JSON lines."""

    def __init__(self, *args):
        if not shutil.which("node"):
            pytest.fail("node is missing (tests/browser/setup.sh needs Node ≥ 20)")
        if not (NODE_DIR / "node_modules" / "openid-client").exists():
            pytest.fail("openid-client is not installed: run tests/browser/setup.sh")
        self.proc = subprocess.Popen(
            ["node", str(NODE_DIR / "rp.mjs"), *args], cwd=NODE_DIR, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr),
                         daemon=True).start()

    def _pump_stdout(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read(self, step, timeout=NODE_TIMEOUT):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"openid-client said nothing within {timeout}s; stderr: "
                                 f"{''.join(self.stderr)}")
        assert line is not None, f"openid-client ended; stderr: {''.join(self.stderr)}"
        msg = json.loads(line)
        assert msg["step"] == step, f"openid-client: {msg}\nstderr: {''.join(self.stderr)}"
        return msg

    def send(self, obj):
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def node_rp():
    made = []

    def start(*args):
        rp = NodeRP(*args)
        made.append(rp)
        return rp

    yield start
    for rp in made:
        rp.close()


def test_openid_client_code_flow_pkce_userinfo_refresh_revocation_introspection(
        site, app, meta, portal, page, shot, node_rp):
    """openid-client 6.9.0: discovery, buildAuthorizationUrl (PKCE S256, nonce, state), the
    sign-in in Chromium, authorizationCodeGrant (checks state, iss, the id_token's claims and
    RS256), fetchUserInfo, tokenIntrospection, refreshTokenGrant, tokenRevocation."""
    user, (org,) = person(site, "node")
    rp = node_rp("code", meta["issuer"], portal[0], portal[1], app.redirect_uri)
    url = rp.read("authorize")["url"]
    q = query(url)
    assert q["code_challenge_method"] == "S256" and q["client_id"] == portal[0]
    assert url.startswith(meta["authorization_endpoint"] + "?")
    callback = authorize_in_browser(page, shot, url, app, email=user["email"])
    rp.send({"callback": callback})
    done = rp.read("done")
    assert done["issuer"] == meta["issuer"]
    assert done["idHeader"]["alg"] == "RS256"
    c = done["claims"]
    assert c["iss"] == meta["issuer"] and c["aud"] == portal[0] and c["nonce"] == done["nonce"]
    assert c["email"] == user["email"] and c["org_slug"] == org["slug"]
    assert done["userinfo"]["sub"] == c["sub"] and done["userinfo"]["email"] == user["email"]
    assert done["introspected"]["active"] is True
    assert done["introspected"]["sub"] == c["sub"]
    assert done["refreshRotated"] is True
    assert done["userinfoAfterRefresh"]["sub"] == c["sub"]
    assert done["introspectedAfterRevoke"]["active"] is False
    assert done["userinfoAfterRevoke"] != "accepted", done["userinfoAfterRevoke"]
    assert done["refreshAfterRevoke"] != "accepted"
    assert done["refreshAfterRevoke"]["error"] == "invalid_grant", done["refreshAfterRevoke"]
    assert done["endSession"].startswith(meta["end_session_endpoint"] + "?")


def test_openid_client_device_flow_approved_on_device_page(site, app, meta, page, shot, node_rp):
    """RFC 8628 with a public client: initiateDeviceAuthorization, the person opens
    verification_uri_complete in Chromium, signs in, checks the code and approves;
    pollDeviceAuthorizationGrant gets the tokens."""
    user, (org,) = person(site, "device")
    cli = register(site, app, name="Acme CLI", public=True)
    assert cli[1] is None
    rp = node_rp("device", meta["issuer"], cli[0])
    d = rp.read("device")
    assert re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", d["user_code"]), d["user_code"]
    assert d["verification_uri"] == site.url("/device")
    assert d["interval"] >= 1 and d["expires_in"] > 0

    page.goto(d["verification_uri_complete"])
    assert LOGIN_URL.search(urlparse(page.url).path), page.url
    shot(page, "device-login")
    submit_and_wait(page, fill_login(page, user["email"], PASSWORD))
    # The code form, filled in from the link.
    code = page.locator('input[name="user_code"]')
    expect(code).to_have_value(d["user_code"])
    shot(page, "device-code")
    save_shot(page, "oidc-device-code.png")
    submit_and_wait(page, page.locator('form[action="/device"]').first)
    # What the device asks for, and the decision.
    expect_no_error(page)
    expect(page.locator("body")).to_contain_text("Acme CLI")
    expect(page.locator("ul.scope-list li")).to_have_count(3)
    shot(page, "device-approve")
    save_shot(page, "oidc-device-approve.png")
    navigate_by(page, page.locator('button[name="decision"][value="approve"]').click)
    expect_no_error(page)
    shot(page, "device-approved")
    save_shot(page, "oidc-device-done.png")

    done = rp.read("done", timeout=NODE_TIMEOUT)
    assert done["hasRefresh"] is True
    c = done["claims"]
    assert c["aud"] == cli[0] and c["iss"] == meta["issuer"] and c["email"] == user["email"]
    assert c["org_slug"] == org["slug"]
    assert done["userinfo"]["sub"] == c["sub"]

