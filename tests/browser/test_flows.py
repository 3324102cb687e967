"""End-to-end flows a person goes through on the hosted pages (docs/pages.md, API.md §12)."""

import re

import pyotp
from playwright.sync_api import expect

from conftest import PASSWORD
from lk import (
    ACCOUNT_URL,
    backup_codes_on,
    body_text,
    by_text,
    click_and_wait,
    navigate_by,
    expect_qr,
    expect_account,
    expect_no_error,
    expect_signed_out,
    fill_login,
    form_to,
    form_with,
    open_login,
    path,
    sign_in,
    sign_out,
    submit_and_wait,
    totp_secret_on,
)

NEW_PASSWORD = "Another-Staple-Horse-77"


def follow_token_link(page, shot, link, step, button_page=True):
    """Opens an emailed link; for magic-link / verify-email the GET must only show a button
    (the token is spent by the POST) — returns the form that spends it."""
    resp = page.goto(link)
    assert resp.status == 200, f"{link} answered {resp.status}"
    shot(page, step)
    if button_page:
        f = form_with(page, "token")
        assert f.locator('[name="token"]').get_attribute("type") == "hidden"
        return f
    return None


def test_signup_verify_email_then_sign_in(site, mail, page, shot):
    # A `domain` org: the address is the credential, so sign-up proves the mailbox first.
    org = site.create_org("signup", settings={"signupMode": "domain",
                                              "allowedDomains": ["example.com"]})
    addr = site.email("newcomer")
    page.goto(path("/signup", org=org["slug"]))
    shot(page, "signup")
    f = form_with(page, "name", "email", "password")
    f.locator('[name="name"]').fill("New Comer")
    f.locator('[name="email"]').fill(addr)
    f.locator('[name="password"]').fill(PASSWORD)
    shot(page, "signup-filled")
    mark = mail.mark()
    resp = submit_and_wait(page, f)
    assert resp.status < 400, f"sign-up POST answered {resp.status}"
    expect_no_error(page)
    shot(page, "signup-done")

    link = mail.link(addr, after=mark)
    assert "/verify-email?token=" in link and "/api/" not in link, link
    f = follow_token_link(page, shot, link, "verify-email")
    # A never-verified account with a password: the clicker proves they hold it (whoever did
    # not sign up resets the password instead), so a squatter's account is never verified by
    # the real owner's click.
    f.locator('[name="password"]').fill(PASSWORD)
    resp = submit_and_wait(page, f)
    assert resp.status < 400, f"verify-email POST answered {resp.status}"
    expect_no_error(page)
    shot(page, "verified")

    if not ACCOUNT_URL.search(page.url):
        sign_in(page, shot, addr, PASSWORD, org=org["slug"])
    expect_account(page, shot, addr)
    # `/` sends a signed-in person to /account.
    page.goto("/")
    expect(page).to_have_url(ACCOUNT_URL)


def test_signup_open_org_lands_on_account(site, page, shot):
    org = site.create_org("open", settings={"signupMode": "open"})
    addr = site.email("opener")
    page.goto(path("/signup", org=org["slug"]))
    shot(page, "signup")
    f = form_with(page, "name", "email", "password")
    f.locator('[name="name"]').fill("Open Sesame")
    f.locator('[name="email"]').fill(addr)
    f.locator('[name="password"]').fill(PASSWORD)
    submit_and_wait(page, f)
    shot(page, "after-signup")
    if not ACCOUNT_URL.search(page.url):
        sign_in(page, shot, addr, PASSWORD, org=org["slug"])
    expect_account(page, shot, addr)


def test_sign_in_with_totp(site, page, shot, totp):
    org = site.create_org("totp")
    user = site.create_user("totp", org=org["slug"])
    token = site.login_api(user["email"], user["password"], org["slug"])
    secret, _ = site.enable_totp_api(token, org["slug"], totp)

    sign_in(page, shot, user["email"], user["password"], org=org["slug"])
    expect(page).to_have_url(re.compile(r"/login/2fa"))
    shot(page, "2fa")
    f = form_with(page, "code")
    code = f.locator('[name="code"]')
    assert code.get_attribute("autocomplete") == "one-time-code"
    assert code.get_attribute("inputmode") == "numeric"
    # A wrong code is refused on the same page.
    code.fill("000000")
    resp = submit_and_wait(page, f)
    expect(page.locator("[role=alert]")).to_be_visible()
    assert not ACCOUNT_URL.search(page.url)
    shot(page, "2fa-wrong-code")
    f = form_with(page, "code")
    f.locator('[name="code"]').fill(totp.code(secret))
    submit_and_wait(page, f)
    expect_account(page, shot, user["email"])


def test_enrol_2fa_on_account_then_sign_in_with_backup_code(site, page, shot, totp):
    org = site.create_org("enrol")
    user = site.create_user("enrol", org=org["slug"])
    sign_in(page, shot, user["email"], user["password"], org=org["slug"])
    expect_account(page, shot, user["email"])

    submit_and_wait(page, form_to(page, "/account/2fa/setup"))
    shot(page, "2fa-setup")
    secret = totp_secret_on(page)
    expect_qr(page)
    f = form_to(page, "/account/2fa/enable")
    f.locator('[name="code"]').fill(totp.code(secret))
    submit_and_wait(page, f)
    expect_no_error(page)
    shot(page, "2fa-enabled-backup-codes")
    codes = backup_codes_on(page)
    assert len(codes) >= 10, f"expected 10 backup codes on the page, saw {codes}"

    # 2FA is on now: the account page offers to turn it off.
    page.goto("/account")
    expect(form_to(page, "/account/2fa/disable")).to_be_attached()
    shot(page, "account-2fa-on")

    sign_out(page, shot)
    expect_signed_out(page, shot)
    sign_in(page, shot, user["email"], user["password"], step="login-again", org=org["slug"])
    expect(page).to_have_url(re.compile(r"/login/2fa"))
    f = form_with(page, "code")
    f.locator('[name="code"]').fill(codes[0])
    shot(page, "2fa-backup-code")
    submit_and_wait(page, f)
    expect_account(page, shot, user["email"], step="account-after-backup-code")


def test_forgot_then_reset_password(site, mail, page, shot):
    org = site.create_org("forgot")
    user = site.create_user("forgot", org=org["slug"])
    open_login(page, shot, org=org["slug"])
    click_and_wait(page, page.locator('a[href*="/forgot-password"]').first)
    expect(page).to_have_url(re.compile(r"/forgot-password"))
    shot(page, "forgot")
    f = form_with(page, "email", without=("password",))
    f.locator('[name="email"]').fill(user["email"])
    mark = mail.mark()
    resp = submit_and_wait(page, f)
    assert resp.status < 400
    shot(page, "forgot-sent")

    link = mail.link(user["email"], after=mark)
    assert "/reset-password?token=" in link, link
    follow_token_link(page, shot, link, "reset", button_page=False)
    f = form_with(page, "token", "password")
    assert f.locator('[name="password"]').get_attribute("autocomplete") == "new-password"
    f.locator('[name="password"]').fill(NEW_PASSWORD)
    resp = submit_and_wait(page, f)
    assert resp.status < 400, f"reset POST answered {resp.status}"
    expect_no_error(page)
    shot(page, "reset-done")

    # The old password no longer works; the new one does.
    sign_in(page, shot, user["email"], PASSWORD, step="login-old-password", org=org["slug"])
    expect(page.locator("[role=alert]")).to_be_visible()
    assert not ACCOUNT_URL.search(page.url)
    shot(page, "old-password-refused")
    sign_in(page, shot, user["email"], NEW_PASSWORD, step="login-new-password", org=org["slug"])
    expect_account(page, shot, user["email"])


def test_magic_link(site, mail, page, shot):
    org = site.create_org("magic")
    user = site.create_user("magic", org=org["slug"])
    open_login(page, shot, org=org["slug"])
    f = form_with(page, "email", without=("password",))
    f.locator('[name="email"]').fill(user["email"])
    mark = mail.mark()
    resp = submit_and_wait(page, f)
    assert resp.status < 400
    expect_no_error(page)
    shot(page, "magic-link-sent")

    link = mail.link(user["email"], after=mark)
    assert "/magic-link?token=" in link, link
    f = follow_token_link(page, shot, link, "magic-link")
    # The GET spent nothing and signed nobody in.
    assert page.locator("input[name=current_password]").count() == 0
    submit_and_wait(page, f)
    expect_account(page, shot, user["email"])


def test_invitation_new_account(site, mail, page, shot):
    org = site.create_org("inviting", name="Inviting Co")
    admin = site.create_user("orgadmin", org=org["slug"], role="org_admin")
    token = site.login_api(admin["email"], admin["password"], org["slug"])
    invitee = site.email("invitee")
    mark = mail.mark()
    site.invite(token, org["slug"], invitee)  # sendEmail defaults to true

    link = mail.link(invitee, after=mark)
    assert "/invitations/accept?token=" in link, link
    page.goto(link)
    shot(page, "invitation")
    expect(page.locator("body")).to_contain_text("Inviting Co")
    f = form_with(page, "token", "name", "password")
    assert f.locator('[name="password"]').get_attribute("autocomplete") == "new-password"
    f.locator('[name="name"]').fill("Ivy Invitee")
    f.locator('[name="password"]').fill(PASSWORD)
    shot(page, "invitation-filled")
    submit_and_wait(page, f)
    expect_account(page, shot, invitee)
    expect(page.locator("body")).to_contain_text("Inviting Co")


def test_invitation_existing_account(site, mail, page, shot):
    home = site.create_org("home")
    org = site.create_org("joining", name="Joining Ltd")
    admin = site.create_user("joinadmin", org=org["slug"], role="org_admin")
    user = site.create_user("existing", org=home["slug"])
    token = site.login_api(admin["email"], admin["password"], org["slug"])
    mark = mail.mark()
    site.invite(token, org["slug"], user["email"])

    link = mail.link(user["email"], after=mark)
    page.goto(link)
    shot(page, "invitation-sign-in")
    # Not signed in here: the page asks to sign in first and offers no password form.
    assert page.locator("form input[name=password]").count() == 0
    click_and_wait(page, page.locator('a[href*="/login"]').first)
    expect(page).to_have_url(re.compile(r"/login"))
    shot(page, "login")
    f = fill_login(page, user["email"], user["password"])
    submit_and_wait(page, f)
    # Back on the invitation, now as the invitee: one button to join.
    if "/invitations/accept" not in page.url:
        page.goto(link)
    shot(page, "invitation-join")
    f = form_with(page, "token", without=("password",))
    submit_and_wait(page, f)
    expect_no_error(page)
    shot(page, "joined")
    page.goto("/account")
    expect_account(page, shot, user["email"], step="account-with-new-org")
    expect(page.locator("body")).to_contain_text("Joining Ltd")


def test_revoke_other_session(site, new_context, shot):
    org = site.create_org("sessions")
    user = site.create_user("sessions", org=org["slug"])
    laptop = new_context().new_page()
    phone = new_context(user_agent="Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile").new_page()
    sign_in(phone, shot, user["email"], user["password"], step="phone-login", org=org["slug"])
    expect_account(phone, shot, user["email"], step="phone-account")
    sign_in(laptop, shot, user["email"], user["password"], step="laptop-login", org=org["slug"])
    expect_account(laptop, shot, user["email"], step="laptop-account")

    revoke = laptop.locator('form[action="/account/sessions/revoke"]')
    before = revoke.count()
    assert before >= 1, "the laptop sees no other session to revoke"
    submit_and_wait(laptop, revoke.first)
    expect_no_error(laptop)
    laptop.goto("/account")
    shot(laptop, "laptop-after-revoke")
    assert laptop.locator('form[action="/account/sessions/revoke"]').count() == before - 1
    expect(laptop).to_have_url(ACCOUNT_URL)

    expect_signed_out(phone, shot, step="phone-after-revoke")


def test_german_pages(site, new_context, shot):
    from lk import html_lang, translations

    org = site.create_org("deutsch")
    en = new_context().new_page()
    en.goto(path("/login", org=org["slug"]))
    assert html_lang(en) == "en"
    en_button = form_with(en, "email", "password").get_by_role("button").first.inner_text().strip()
    shot(en, "login-en")

    de_values = set((translations("de") or {}).values())
    en_values = set((translations("en") or {}).values())

    def check_german(page, step):
        assert html_lang(page) == "de", f"<html lang> is {html_lang(page)!r}"
        text = form_with(page, "email", "password").get_by_role("button").first.inner_text()
        text = text.strip()
        assert text and text != en_button, f"login button still {text!r}"
        if de_values:
            assert text in de_values, f"{text!r} is not a text of de.json"
        if en_values and de_values:
            assert text not in en_values - de_values
        shot(page, step)

    # ?lang=de in an English browser.
    p = new_context().new_page()
    p.goto(path("/login", org=org["slug"], lang="de"))
    check_german(p, "login-lang-de")
    # A German browser (Accept-Language: de-DE) with no ?lang=.
    ctx = new_context(locale="de-DE", extra_http_headers={"Accept-Language": "de-DE,de;q=0.9"})
    p = ctx.new_page()
    p.goto(path("/login", org=org["slug"]))
    check_german(p, "login-accept-language-de")
    p.goto(path("/forgot-password", org=org["slug"]))
    assert html_lang(p) == "de"
    shot(p, "forgot-de")


def test_org_requiring_2fa_enrols_at_sign_in(site, page, shot, totp):
    org = site.create_org("strict", settings={"require2FA": True})
    user = site.create_user("strict", org=org["slug"])
    sign_in(page, shot, user["email"], user["password"], org=org["slug"])
    expect(page).to_have_url(re.compile(r"/login/setup-2fa"))
    shot(page, "setup-2fa")
    secret = totp_secret_on(page)
    expect_qr(page)
    f = form_with(page, "code")
    f.locator('[name="code"]').fill(totp.code(secret))
    submit_and_wait(page, f)
    expect_no_error(page)
    shot(page, "backup-codes")
    assert len(backup_codes_on(page)) >= 10
    # Continue from the backup codes page.
    click_and_wait(page, by_text(page, "backup_codes.continue",
                                 re.compile(r"continue|saved", re.I)).first)
    expect_account(page, shot, user["email"])


def test_org_picker(site, page, shot):
    a = site.create_org("pick-a", name="Alpha Org")
    b = site.create_org("pick-b", name="Beta Org")
    user = site.create_user("picker", org=a["slug"])
    site.add_member(b["slug"], user["id"])
    sign_in(page, shot, user["email"], user["password"])  # no org named
    expect(page).to_have_url(re.compile(r"/login/select-org"))
    shot(page, "select-org")
    buttons = page.locator('form button[name="org"]')
    assert buttons.count() == 2, f"expected two org buttons, saw {buttons.count()}"
    expect(page.locator("body")).to_contain_text("Alpha Org")
    expect(page.locator("body")).to_contain_text("Beta Org")
    navigate_by(page, page.locator(f'form button[name="org"][value="{b["slug"]}"]').click)
    expect_account(page, shot, user["email"])
