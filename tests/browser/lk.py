"""What a person does on Latchkey's pages, written against docs/pages.md: forms are found by
the fields they hold (`name=` attributes), buttons by role."""

import json
import re
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import expect

REPO = Path(__file__).resolve().parent.parent.parent
ACCOUNT_URL = re.compile(r"/account(?:[?#].*)?$")
LOGIN_URL = re.compile(r"/login(?:[?#].*)?$")


def path(p, **query):
    q = {k: v for k, v in query.items() if v is not None}
    return p + ("?" + urlencode(q) if q else "")


def form_with(page, *fields, without=()):
    """The form that holds an input named after each of `fields` (and none of `without`)."""
    loc = page.locator("form")
    for f in fields:
        loc = loc.filter(has=page.locator(f'[name="{f}"]'))
    for f in without:
        loc = loc.filter(has_not=page.locator(f'[name="{f}"]'))
    expect(loc.first).to_be_attached()
    return loc.first


def form_to(page, action):
    """The form that POSTs to `action` (its path, whatever query it carries)."""
    loc = page.locator(f'form[action="{action}"], form[action^="{action}?"]')
    expect(loc.first).to_be_attached()
    return loc.first


def submit(form):
    """Clicks the form's (first) submit button."""
    btn = form.locator('button:not([type="button"]):not([type="reset"]), input[type="submit"]')
    btn.first.click()


def navigate_by(page, action, post=True):
    """Runs `action` (a click, a key press) that submits a form or follows a link, waits until
    the page it leads to has loaded, and returns the response to the POST (`post`) or the
    final response of the navigation."""
    if post:
        with page.expect_response(lambda r: r.request.method == "POST") as info:
            with page.expect_navigation(wait_until="load"):
                action()
        return info.value
    with page.expect_navigation(wait_until="load") as nav:
        action()
    return nav.value


def submit_and_wait(page, form):
    """Submits `form` and returns the response to its POST once the next page has loaded."""
    return navigate_by(page, lambda: submit(form))


def click_and_wait(page, locator):
    return navigate_by(page, locator.click, post=False)


def html_lang(page):
    return page.locator("html").get_attribute("lang")


def body_text(page):
    return page.locator("body").inner_text()


def expect_no_error(page):
    alert = page.locator("[role=alert]")
    if alert.count():
        raise AssertionError(f"the page shows an error: {alert.first.inner_text()!r} at {page.url}")


def csrf_value(form):
    return form.locator('input[name="csrf"]').get_attribute("value")


# -- sign-in --------------------------------------------------------------------------------


def open_login(page, shot, step="login", **query):
    page.goto(path("/login", **query))
    expect(page.locator("form input[name=password]")).to_be_visible()
    shot(page, step)


def fill_login(page, email, password):
    f = form_with(page, "email", "password")
    f.locator('[name="email"]').fill(email)
    f.locator('[name="password"]').fill(password)
    return f


def sign_in(page, shot, email, password, step="login", **query):
    """Opens /login (with `query`: org, return_to, lang), signs in, returns the POST's
    response; the page is wherever the sign-in led."""
    open_login(page, shot, step, **query)
    f = fill_login(page, email, password)
    shot(page, step + "-filled")
    return submit_and_wait(page, f)


def expect_account(page, shot, email=None, step="account"):
    expect(page).to_have_url(ACCOUNT_URL)
    expect_no_error(page)
    if email:
        expect(page.locator("body")).to_contain_text(email)
    shot(page, step)


def sign_out(page, shot, step="signed-out"):
    f = form_to(page, "/logout")
    submit_and_wait(page, f)
    shot(page, step)


def expect_signed_out(page, shot=None, step="account-when-signed-out"):
    """/account must not show an account any more: it sends to /login (or refuses)."""
    resp = page.goto("/account")
    if shot:
        shot(page, step)
    assert not ACCOUNT_URL.search(page.url) or resp.status in (401, 403), (
        f"still signed in: /account answered {resp.status} at {page.url}"
    )
    assert page.locator("form input[name=current_password]").count() == 0


# -- reading pages --------------------------------------------------------------------------

BASE32_GROUPED = re.compile(r"(?<![A-Z2-7])((?:[A-Z2-7]{4}[ \u00a0-]?){6,}[A-Z2-7]*)(?![A-Z2-7])")


def totp_secret_on(page):
    """The TOTP secret as the page shows it to a person (grouped or not); cross-checked with the
    otpauth:// URL when the page links one."""
    text = body_text(page)
    shown = None
    for m in BASE32_GROUPED.finditer(text):
        cand = re.sub(r"[ \u00a0-]", "", m.group(1))
        if len(cand) >= 16:
            shown = cand
            break
    html = page.content()
    m = re.search(r"otpauth://totp/[^\"'<>\s]*[?&](?:amp;)?secret=([A-Za-z2-7]+)", html)
    linked = m.group(1).upper() if m else None
    assert shown or linked, "no TOTP secret shown on the page"
    if shown and linked:
        assert shown == linked, f"the secret shown ({shown}) is not the otpauth one ({linked})"
    return shown or linked


BACKUP_CODE = re.compile(r"\b[A-Za-z0-9]{4,5}-[A-Za-z0-9]{4,5}\b")


def backup_codes_on(page):
    codes = BACKUP_CODE.findall(body_text(page))
    seen = []
    for c in codes:
        if c not in seen:
            seen.append(c)
    return seen


def translations(lang):
    f = REPO / "src" / "ui" / "i18n" / f"{lang}.json"
    if f.exists():
        return json.loads(f.read_text())
    return None


def t(key, lang="en"):
    """A text of src/ui/i18n/<lang>.json (None when the file or key is missing)."""
    return (translations(lang) or {}).get(key)


def by_text(page, key, fallback):
    """A link or button named by the i18n text `key` (or the `fallback` pattern)."""
    name = t(key) or fallback
    return page.get_by_role("link", name=name).or_(page.get_by_role("button", name=name))


QR_SHOWN = """() => [...document.querySelectorAll('svg, img, canvas')].some(e => {
  const r = e.getBoundingClientRect(); return r.width >= 100 && r.height >= 100 })"""


def expect_qr(page):
    assert page.evaluate(QR_SHOWN), "no QR code (an image of 100 px or more) on the page"
