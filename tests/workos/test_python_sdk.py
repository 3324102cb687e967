"""The official Python SDK (`workos` 10.8.0, strict models) run through every call issue 16
names, against WORKOS_BASE_URL. One pytest test per call, in order; a call whose inputs an
earlier call failed to produce is skipped ("needs …"), so a partial server shows how far it gets.
What the target must provide: README.md."""

import os
import time
import urllib.parse

import bcrypt
import jwt
import pytest
from types import SimpleNamespace
from cryptography.fernet import Fernet
from workos import WorkOSClient
from workos._errors import (
    AuthenticationError,
    BadRequestError,
    WorkOSError,
    EmailVerificationRequiredError,
    MfaChallengeError,
    MfaEnrollmentError,
    NotFoundError,
    OrganizationSelectionRequiredError,
)
from workos.organization_membership._resource import RoleSingle
from workos.organizations.models import OrganizationDomainData
from workos.session import seal_session_from_auth_response
from workos.user_management._resource import PasswordHashed, PasswordPlaintext

import wk

STEPS = []
S = {}  # what earlier calls produced
LAST = {}  # the last JSON body the SDK parsed, kept for a step whose model refused it

_orig_deserialize = WorkOSClient._deserialize_response


def _keep_body(self, response, model):
    try:
        LAST["json"] = response.json() if response.content else None
    except Exception:
        LAST["json"] = None
    return _orig_deserialize(self, response, model)


WorkOSClient._deserialize_response = _keep_body


def ns(d):
    """A raw JSON object read like an SDK model (attributes), for later calls."""
    if isinstance(d, dict):
        return SimpleNamespace(**{k.replace("#", "_"): ns(v) for k, v in d.items()})
    if isinstance(d, list):
        return [ns(x) for x in d]
    return d


def salvage(key, convert=ns):
    """The server answered but the SDK's model refused the answer: keep what it said under
    S[key] so the calls after this one are still tried; the step itself fails (re-raise)."""
    body = LAST.get("json")
    if isinstance(body, dict):
        try:
            S[key] = convert(body)
        except Exception:
            pass


def sid_of(access_token):
    """The session id an app reads from the access token (`sid`), unverified."""
    return jwt.decode(access_token, options={"verify_signature": False}).get("sid")


def step(*needs):
    def deco(fn):
        STEPS.append((fn.__name__, fn, needs))
        return fn
    return deco


@pytest.fixture(scope="session")
def c():
    return WorkOSClient(api_key=wk.API_KEY, client_id=wk.CLIENT_ID, base_url=wk.BASE_URL,
                        max_retries=int(os.environ.get("WORKOS_MAX_RETRIES", "0")))


def sign_in(c, email, password=wk.PASSWORD, **kw):
    return c.user_management.authenticate_with_password(email=email, password=password, **kw)


def new_user(c, tag, verified=True, password=wk.PASSWORD, **kw):
    return c.user_management.create_user(
        email=wk.email(tag), password=PasswordPlaintext(password=password),
        first_name="Harness", last_name=tag.title(), email_verified=verified, **kw)


def member(c, user_id, org_id, role=wk.ROLE):
    """Seats a user in an org for a later call. Sent raw (the SDK's own
    create_organization_membership is tested in its own step), so that a server whose
    membership object the SDK cannot parse still gets its sign-in calls tested."""
    return c.request_raw(method="post", path=("user_management", "organization_memberships"),
                         body={"user_id": user_id, "organization_id": org_id, "role_slug": role})


def expect_403(fn, cls):
    try:
        fn()
    except cls as e:
        assert e.pending_authentication_token, f"{cls.__name__} without pending_authentication_token"
        return e
    raise AssertionError(f"expected 403 {cls.__name__}, the call succeeded")


def cookie_password():
    return Fernet.generate_key().decode()


# --- organizations ---------------------------------------------------------------------------

@step()
def organizations_create_organization(c):
    dom = f"{wk.RUN}-a.{wk.EMAIL_DOMAIN}"
    o = c.organizations.create_organization(
        name=f"Harness A {wk.RUN}", external_id=f"ext-org-{wk.RUN}", metadata={"tier": "gold"},
        domain_data=[OrganizationDomainData(domain=dom, state="verified")])
    assert o.id and o.name == f"Harness A {wk.RUN}"
    assert o.external_id == f"ext-org-{wk.RUN}", o.external_id
    assert [d.domain for d in o.domains] == [dom], o.domains
    S["org_a"] = o.id
    S["org_a_domain"] = dom


@step("org_a")
def organizations_get_organization(c):
    o = c.organizations.get_organization(S["org_a"])
    assert o.id == S["org_a"] and o.domains and o.domains[0].organization_id == S["org_a"]


@step("org_a")
def organizations_get_organization_by_external_id(c):
    assert c.organizations.get_organization_by_external_id(f"ext-org-{wk.RUN}").id == S["org_a"]


@step("org_a")
def organizations_update_organization(c):
    o = c.organizations.update_organization(S["org_a"], name=f"Harness A2 {wk.RUN}",
                                            metadata={"tier": "platinum"})
    assert o.name == f"Harness A2 {wk.RUN}" and o.metadata.get("tier") == "platinum", o


@step("org_a")
def organizations_list_organizations(c):
    page = c.organizations.list_organizations(limit=100)
    ids = [o.id for o in page.auto_paging_iter()]
    assert S["org_a"] in ids


@step("org_a")
def organizations_list_organizations_by_domain(c):
    page = c.organizations.list_organizations(domains=[S["org_a_domain"]])
    assert [o.id for o in page.data] == [S["org_a"]], [o.id for o in page.data]


@step()
def organizations_create_organization_second(c):
    S["org_b"] = c.organizations.create_organization(name=f"Harness B {wk.RUN}").id


# --- users -----------------------------------------------------------------------------------

@step()
def user_management_create_user(c):
    u = new_user(c, "main", external_id=f"ext-usr-{wk.RUN}")
    assert u.email == wk.email("main") and u.email_verified is True
    assert u.external_id == f"ext-usr-{wk.RUN}" and u.first_name == "Harness"
    S["user"] = u.id
    S["password"] = wk.PASSWORD


@step("user")
def user_management_get_user(c):
    assert c.user_management.get_user(S["user"]).email == wk.email("main")


@step("user")
def user_management_get_user_by_external_id(c):
    assert c.user_management.get_user_by_external_id(f"ext-usr-{wk.RUN}").id == S["user"]


@step("user")
def user_management_update_user(c):
    u = c.user_management.update_user(S["user"], first_name="Changed",
                                      external_id=f"ext-usr2-{wk.RUN}")
    assert u.first_name == "Changed" and u.external_id == f"ext-usr2-{wk.RUN}", u


@step("user")
def user_management_list_users(c):
    page = c.user_management.list_users(email=wk.email("main"))
    assert [u.id for u in page.data] == [S["user"]], [u.id for u in page.data]


@step()
def user_management_create_user_password_hash_bcrypt(c):
    pw = "Legacy-bcrypt-4471-pw"
    h = bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=10)).decode()
    u = c.user_management.create_user(
        email=wk.email("bcrypt"), email_verified=True,
        password=PasswordHashed(password_hash=h, password_hash_type="bcrypt"))
    S["bcrypt_user"] = u.id
    S["bcrypt_pw"] = pw


# --- memberships -----------------------------------------------------------------------------

@step("user", "org_a")
def organization_membership_create_organization_membership(c):
    try:
        m = c.organization_membership.create_organization_membership(
            user_id=S["user"], organization_id=S["org_a"], role=RoleSingle(role_slug=wk.ROLE))
    except WorkOSError:
        salvage("mem", lambda b: b["id"])
        raise
    assert m.user_id == S["user"] and m.organization_id == S["org_a"] and m.status == "active"
    assert m.role.slug == wk.ROLE, m.role
    S["mem"] = m.id


@step("mem")
def organization_membership_get_organization_membership(c):
    m = c.organization_membership.get_organization_membership(S["mem"])
    assert m.id == S["mem"] and m.user.id == S["user"]


@step("mem")
def organization_membership_list_by_user(c):
    page = c.organization_membership.list_organization_memberships(user_id=S["user"])
    assert [m.id for m in page.data] == [S["mem"]]


@step("mem")
def organization_membership_list_by_org_and_status(c):
    page = c.organization_membership.list_organization_memberships(
        organization_id=S["org_a"], statuses=["active"])
    assert S["mem"] in [m.id for m in page.data]


@step("mem")
def organization_membership_update_organization_membership(c):
    m = c.organization_membership.update_organization_membership(
        S["mem"], role=RoleSingle(role_slug=wk.ROLE_ALT))
    assert m.role.slug == wk.ROLE_ALT, m.role


@step("mem")
def organization_membership_deactivate_organization_membership(c):
    m = c.organization_membership.deactivate_organization_membership(S["mem"])
    assert m.status == "inactive", m.status
    page = c.organization_membership.list_organization_memberships(
        organization_id=S["org_a"], statuses=["inactive"])
    assert S["mem"] in [x.id for x in page.data]


@step("mem")
def organization_membership_reactivate_organization_membership(c):
    m = c.organization_membership.reactivate_organization_membership(S["mem"])
    assert m.status == "active", m.status


# --- sign-in, tokens, sessions ---------------------------------------------------------------

@step("user")
def authenticate_with_password(c):
    r = sign_in(c, wk.email("main"), S["password"])
    assert r.user.id == S["user"] and r.access_token and r.refresh_token
    S["auth"] = r


@step("auth", "mem")
def authenticate_with_password_sole_org(c):
    r = S["auth"]
    assert r.organization_id == S["org_a"], r.organization_id
    assert r.authentication_method == "Password", r.authentication_method


@step()
def user_management_get_jwks(c):
    j = c.user_management.get_jwks(wk.CLIENT_ID)
    assert j.keys and all(k.x_5_c and k.x_5_t_s_256 and k.kid for k in j.keys)


@step("auth")
def load_sealed_session_authenticate(c):
    r, pw = S["auth"], cookie_password()
    sealed = seal_session_from_auth_response(access_token=r.access_token,
                                             refresh_token=r.refresh_token,
                                             user=r.user.to_dict(), cookie_password=pw)
    a = c.user_management.load_sealed_session(session_data=sealed, cookie_password=pw).authenticate()
    assert a.authenticated, f"not authenticated: {getattr(a, 'reason', a)}"
    assert a.session_id and a.user["id"] == S["user"]
    S["sid"] = a.session_id
    S["sealed"] = (sealed, pw)
    S["claims_org"] = a.organization_id


@step("sealed")
def load_sealed_session_claims(c):
    assert S["claims_org"] == S.get("org_a"), f"org_id claim {S['claims_org']!r}"


@step("sealed")
def load_sealed_session_refresh(c):
    sealed, pw = S["sealed"]
    s = c.user_management.load_sealed_session(session_data=sealed, cookie_password=pw)
    r = s.refresh()
    assert r.authenticated, f"refresh failed: {getattr(r, 'reason', r)}"
    again = c.user_management.load_sealed_session(session_data=r.sealed_session,
                                                  cookie_password=pw).authenticate()
    assert again.authenticated, getattr(again, "reason", again)


@step("user")
def authenticate_with_refresh_token(c):
    r = sign_in(c, wk.email("main"), S["password"])
    r2 = c.user_management.authenticate_with_refresh_token(refresh_token=r.refresh_token)
    assert r2.user.id == S["user"] and r2.refresh_token and r2.refresh_token != r.refresh_token


@step("auth")
def user_management_list_sessions(c):
    sid = sid_of(S["auth"].access_token)
    assert sid, "the access token has no sid"
    page = c.user_management.list_sessions(S["user"], limit=100)
    assert sid in [x.id for x in page.auto_paging_iter()]
    mine = [x for x in page.data if x.id == sid]
    if mine:
        assert mine[0].user_id == S["user"] and mine[0].status == "active", mine[0]


@step("user")
def user_management_revoke_session(c):
    r = sign_in(c, wk.email("main"), S["password"])
    sid = sid_of(r.access_token)
    assert sid, "the access token has no sid"
    c.user_management.revoke_session(session_id=sid)
    with pytest.raises((BadRequestError, AuthenticationError)):
        c.user_management.authenticate_with_refresh_token(refresh_token=r.refresh_token)


@step("user")
def user_management_get_logout_url(c):
    r = sign_in(c, wk.email("main"), S["password"])
    sid = sid_of(r.access_token)
    assert sid, "the access token has no sid"
    url = c.user_management.get_logout_url(session_id=sid, return_to=wk.LOGOUT_RETURN_TO)
    status, loc, body = wk.get_no_redirect(url)
    assert status in (302, 303, 307), f"{status} {body[:200]}"
    assert loc and loc.startswith(wk.LOGOUT_RETURN_TO), loc
    with pytest.raises((BadRequestError, AuthenticationError)):
        c.user_management.authenticate_with_refresh_token(refresh_token=r.refresh_token)


@step("bcrypt_user")
def authenticate_with_password_bcrypt_hash(c):
    r = sign_in(c, wk.email("bcrypt"), S["bcrypt_pw"])
    assert r.user.id == S["bcrypt_user"]
    S["bcrypt_signed_in"] = True


@step("bcrypt_signed_in")
def bcrypt_hash_rehashed_argon2id(c):
    prefix = wk.password_hash_prefix(S["bcrypt_user"])
    if prefix is None:
        pytest.skip("needs LATCHKEY_DB to read the stored hash")
    assert prefix == "$argon2id$", f"stored hash is {prefix!r}"
    assert sign_in(c, wk.email("bcrypt"), S["bcrypt_pw"]).user.id == S["bcrypt_user"]


@step("user")
def authenticate_with_password_wrong(c):
    with pytest.raises((BadRequestError, AuthenticationError)):
        sign_in(c, wk.email("main"), "Wrong-password-9911")


# --- magic auth, password reset --------------------------------------------------------------

@step("user")
def user_management_create_magic_auth(c):
    m = c.user_management.create_magic_auth(email=wk.email("main"))
    assert m.user_id == S["user"] and len(m.code) == 6 and m.code.isdigit(), m
    S["magic"] = m


@step("magic")
def user_management_get_magic_auth(c):
    m = c.user_management.get_magic_auth(S["magic"].id)
    assert m.id == S["magic"].id and m.email == wk.email("main")


@step("magic")
def authenticate_with_magic_auth(c):
    r = c.user_management.authenticate_with_magic_auth(code=S["magic"].code, email=wk.email("main"))
    assert r.user.id == S["user"]
    assert r.authentication_method in (None, "MagicAuth"), r.authentication_method


@step("user")
def user_management_reset_password(c):
    p = c.user_management.reset_password(email=wk.email("main"))
    assert p.user_id == S["user"] and p.password_reset_token and p.password_reset_url
    S["reset"] = p


@step("reset")
def user_management_get_password_reset(c):
    assert c.user_management.get_password_reset(S["reset"].id).id == S["reset"].id


@step("reset")
def user_management_confirm_password_reset(c):
    new = "Harness-reset-5520-pw"
    r = c.user_management.confirm_password_reset(token=S["reset"].password_reset_token,
                                                 new_password=new)
    assert r.user.id == S["user"]
    S["password"] = new
    assert sign_in(c, wk.email("main"), new).user.id == S["user"]


# --- email verification ----------------------------------------------------------------------

def _unverified(c, tag):
    u = new_user(c, tag, verified=False)
    org = wk.special_org("verify") or S.get("org_a")
    if org:
        member(c, u.id, org)
    return u


@step()
def user_management_send_verification_email(c):
    u = _unverified(c, "verify1")
    S["verify1"] = u.id
    r = c.user_management.send_verification_email(u.id)
    assert r.user.id == u.id and r.user.email_verified is False


@step("verify1")
def authenticate_email_verification_required(c):
    e = expect_403(lambda: sign_in(c, wk.email("verify1")), EmailVerificationRequiredError)
    assert e.email_verification_id, "no email_verification_id"
    S["ev1"] = (e.pending_authentication_token, e.email_verification_id)


@step("ev1")
def user_management_get_email_verification(c):
    v = c.user_management.get_email_verification(S["ev1"][1])
    assert v.user_id == S["verify1"] and v.code and v.code.isdigit(), v
    S["ev1_code"] = v.code


@step("ev1_code")
def authenticate_with_email_verification(c):
    r = c.user_management.authenticate_with_email_verification(
        code=S["ev1_code"], pending_authentication_token=S["ev1"][0])
    assert r.user.id == S["verify1"] and r.user.email_verified is True and r.access_token


@step()
def user_management_verify_email(c):
    u = _unverified(c, "verify2")
    e = expect_403(lambda: sign_in(c, wk.email("verify2")), EmailVerificationRequiredError)
    code = c.user_management.get_email_verification(e.email_verification_id).code
    r = c.user_management.verify_email(u.id, code=code)
    assert r.user.id == u.id and r.user.email_verified is True
    assert sign_in(c, wk.email("verify2")).user.id == u.id


# --- MFA -------------------------------------------------------------------------------------

@step("org_a")
def multi_factor_auth_create_user_auth_factor(c):
    u = new_user(c, "mfa")
    member(c, u.id, S["org_a"])
    S["mfa_user"] = u.id
    try:
        r = c.multi_factor_auth.create_user_auth_factor(u.id, type="totp", totp_issuer="Harness",
                                                        totp_user=wk.email("mfa"))
    except WorkOSError:
        def conv(b):
            f = b.get("authentication_factor") or b
            ch = b.get("authentication_challenge") or {}
            t = f["totp"]
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(t.get("uri", "")).query))
            return (f["id"], t.get("secret") or q["secret"], ch.get("id"))
        salvage("factor", conv)
        raise
    f = r.authentication_factor
    assert f.type == "totp" and f.totp and f.totp.secret and f.totp.uri.startswith("otpauth://")
    assert r.authentication_challenge.authentication_factor_id == f.id
    S["factor"] = (f.id, f.totp.secret, r.authentication_challenge.id)


@step("factor")
def multi_factor_auth_verify_challenge(c):
    fid, secret, ch = S["factor"]
    v = c.multi_factor_auth.verify_challenge(ch, code=wk.totp_code(secret))
    assert v.valid is True and v.challenge.id == ch, v


@step("factor")
def multi_factor_auth_list_user_auth_factors(c):
    page = c.multi_factor_auth.list_user_auth_factors(S["mfa_user"])
    assert S["factor"][0] in [f.id for f in page.data]


@step("factor")
def multi_factor_auth_get_factor(c):
    f = c.multi_factor_auth.get_factor(S["factor"][0])
    assert f.id == S["factor"][0] and f.type == "totp"


@step("factor")
def authenticate_mfa_challenge(c):
    e = expect_403(lambda: sign_in(c, wk.email("mfa")), MfaChallengeError)
    ids = [f["id"] for f in (e.authentication_factors or [])]
    assert S["factor"][0] in ids, f"authentication_factors {e.authentication_factors!r}"
    S["mfa_pending"] = e.pending_authentication_token


@step("mfa_pending")
def multi_factor_auth_challenge_factor(c):
    ch = c.multi_factor_auth.challenge_factor(S["factor"][0])
    assert ch.authentication_factor_id == S["factor"][0]
    S["mfa_challenge"] = ch.id


@step("mfa_challenge")
def authenticate_with_totp(c):
    r = c.user_management.authenticate_with_totp(
        code=wk.totp_code(S["factor"][1]), pending_authentication_token=S["mfa_pending"],
        authentication_challenge_id=S["mfa_challenge"])
    assert r.user.id == S["mfa_user"] and r.access_token


@step()
def authenticate_mfa_enrollment(c):
    org = wk.special_org("mfa")
    if not org:
        pytest.skip("needs an org that requires 2FA (WORKOS_MFA_ORG_ID or LATCHKEY_ADMIN_KEY)")
    u = new_user(c, "enroll")
    member(c, u.id, org)
    e = expect_403(lambda: sign_in(c, wk.email("enroll")), MfaEnrollmentError)
    assert (e.user or {}).get("id") == u.id, f"user {e.user!r}"
    r = c.multi_factor_auth.create_user_auth_factor(u.id, type="totp")
    t = c.user_management.authenticate_with_totp(
        code=wk.totp_code(r.authentication_factor.totp.secret),
        pending_authentication_token=e.pending_authentication_token,
        authentication_challenge_id=r.authentication_challenge.id)
    assert t.user.id == u.id and t.organization_id == org


# --- several orgs ----------------------------------------------------------------------------

@step("org_a", "org_b")
def authenticate_organization_selection_required(c):
    u = new_user(c, "multi")
    member(c, u.id, S["org_a"])
    member(c, u.id, S["org_b"])
    S["multi"] = u.id
    e = expect_403(lambda: sign_in(c, wk.email("multi")), OrganizationSelectionRequiredError)
    ids = {o["id"] for o in (e.organizations or [])}
    assert {S["org_a"], S["org_b"]} <= ids, f"organizations {e.organizations!r}"
    S["sel_pending"] = e.pending_authentication_token


@step("sel_pending")
def authenticate_with_organization_selection(c):
    r = c.user_management.authenticate_with_organization_selection(
        pending_authentication_token=S["sel_pending"], organization_id=S["org_b"])
    assert r.user.id == S["multi"] and r.organization_id == S["org_b"], r.organization_id
    S["multi_rt"] = r.refresh_token


@step("multi_rt")
def authenticate_with_refresh_token_organization_id(c):
    r = c.user_management.authenticate_with_refresh_token(refresh_token=S["multi_rt"],
                                                          organization_id=S["org_a"])
    assert r.organization_id == S["org_a"], r.organization_id
    pw = cookie_password()
    sealed = seal_session_from_auth_response(access_token=r.access_token,
                                             refresh_token=r.refresh_token,
                                             user=r.user.to_dict(), cookie_password=pw)
    a = c.user_management.load_sealed_session(session_data=sealed, cookie_password=pw).authenticate()
    assert a.authenticated and a.organization_id == S["org_a"], a


# --- hosted sign-in (authorize → browser → code) ---------------------------------------------

@pytest.fixture(scope="module")
def callback():
    cb = wk.Callback()
    yield cb
    cb.close()


@step("user", "mem")
def authenticate_with_code(c, callback):
    url = c.user_management.get_authorization_url(redirect_uri=wk.REDIRECT_URI, provider="authkit",
                                                  state="st-" + wk.RUN, login_hint=wk.email("main"))
    q = wk.authorization_code(url, wk.email("main"), S["password"], callback)
    assert q.get("code"), f"no code: {q}"
    assert q.get("state") == "st-" + wk.RUN, q
    r = c.user_management.authenticate_with_code(code=q["code"])
    assert r.user.id == S["user"] and r.access_token and r.refresh_token


@step("user", "mem")
def authenticate_with_code_pkce(c, callback):
    p = c.user_management.get_authorization_url_with_pkce(redirect_uri=wk.REDIRECT_URI,
                                                          provider="authkit",
                                                          login_hint=wk.email("main"))
    q = wk.authorization_code(p["url"], wk.email("main"), S["password"], callback)
    assert q.get("code") and q.get("state") == p["state"], q
    r = c.user_management.authenticate_with_code_pkce(code=q["code"],
                                                      code_verifier=p["code_verifier"])
    assert r.user.id == S["user"]


@step("user", "mem")
def authenticate_with_code_pkce_wrong_verifier(c, callback):
    p = c.user_management.get_authorization_url_with_pkce(redirect_uri=wk.REDIRECT_URI,
                                                          provider="authkit",
                                                          login_hint=wk.email("main"))
    q = wk.authorization_code(p["url"], wk.email("main"), S["password"], callback)
    with pytest.raises(BadRequestError):
        c.user_management.authenticate_with_code(code=q["code"],
                                                 code_verifier="x" * 43)


# --- device code -----------------------------------------------------------------------------

@step()
def user_management_create_device(c):
    d = c.user_management.create_device(client_id=wk.CLIENT_ID)
    assert d.device_code and d.user_code and d.verification_uri and d.expires_in > 0
    S["device"] = d


@step("device", "user", "mem")
def authenticate_with_device_code(c):
    d = S["device"]
    try:
        r = c.user_management.authenticate_with_device_code(device_code=d.device_code)
    except BadRequestError as e:
        assert (e.error or e.code) == "authorization_pending", f"{e.code} {e.error} {e}"
        wk.approve_device(d.verification_uri_complete or d.verification_uri,
                          wk.email("main"), S["password"])
        deadline = time.time() + 30
        while True:
            try:
                r = c.user_management.authenticate_with_device_code(device_code=d.device_code)
                break
            except BadRequestError as e2:
                if (e2.error or e2.code) not in ("authorization_pending", "slow_down") \
                        or time.time() > deadline:
                    raise
                time.sleep(max(1.0, float(d.interval or 1)))
    assert r.access_token and r.user.id


# --- invitations -----------------------------------------------------------------------------

@step("org_a")
def user_management_send_invitation(c):
    try:
        i = c.user_management.send_invitation(email=wk.email("invitee"),
                                              organization_id=S["org_a"], expires_in_days=3)
    except WorkOSError:
        salvage("inv")
        raise
    assert i.email == wk.email("invitee") and i.state == "pending" and i.token, i
    assert i.organization_id == S["org_a"] and i.accepted_at is None
    S["inv"] = i


@step("inv")
def user_management_get_invitation(c):
    assert c.user_management.get_invitation(S["inv"].id).id == S["inv"].id


@step("inv")
def user_management_find_invitation_by_token(c):
    assert c.user_management.find_invitation_by_token(S["inv"].token).id == S["inv"].id


@step("inv")
def user_management_list_invitations(c):
    page = c.user_management.list_invitations(organization_id=S["org_a"])
    assert S["inv"].id in [i.id for i in page.data]
    page = c.user_management.list_invitations(email=wk.email("invitee"))
    assert S["inv"].id in [i.id for i in page.data]


@step("inv")
def user_management_resend_invitation(c):
    try:
        i = c.user_management.resend_invitation(S["inv"].id)
    except WorkOSError:
        salvage("inv")
        raise
    assert i.id == S["inv"].id and i.state == "pending"
    S["inv"] = i


@step("inv")
def user_management_accept_invitation(c):
    i = c.user_management.accept_invitation(S["inv"].id)
    assert i.state == "accepted" and i.accepted_at is not None, i


@step("org_a")
def user_management_revoke_invitation(c):
    i = c.user_management.send_invitation(email=wk.email("revokee"), organization_id=S["org_a"])
    r = c.user_management.revoke_invitation(i.id)
    assert r.state == "revoked" and r.revoked_at is not None, r


# --- deletes ---------------------------------------------------------------------------------

@step("mem")
def organization_membership_delete_organization_membership(c):
    c.organization_membership.delete_organization_membership(S["mem"])
    with pytest.raises(NotFoundError):
        c.organization_membership.get_organization_membership(S["mem"])


@step("bcrypt_user")
def user_management_delete_user(c):
    c.user_management.delete_user(S["bcrypt_user"])
    with pytest.raises(NotFoundError):
        c.user_management.get_user(S["bcrypt_user"])


@step("org_b")
def organizations_delete_organization(c):
    c.organizations.delete_organization(S["org_b"])
    with pytest.raises(NotFoundError):
        c.organizations.get_organization(S["org_b"])


# --- the runner ------------------------------------------------------------------------------

_BY_NAME = {name: (fn, needs) for name, fn, needs in STEPS}


@pytest.mark.parametrize("name", [s[0] for s in STEPS])
def test_call(name, c, request):
    fn, needs = _BY_NAME[name]
    missing = [n for n in needs if n not in S]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} from an earlier call")
    args = [c]
    if "callback" in fn.__code__.co_varnames[: fn.__code__.co_argcount]:
        args.append(request.getfixturevalue("callback"))
    fn(*args)

