"""Every field has a label a screen reader announces, and the autocomplete attributes that
password managers understand (issue 14, "Accessibility")."""

import pytest

from lk import path

# page → {field name: autocomplete}
PAGES = {
    "login": ("/login", {"email": "username", "password": "current-password"}),
    "signup": ("/signup", {"name": "name", "email": "username", "password": "new-password"}),
    "forgot-password": ("/forgot-password", {"email": "username"}),
}

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden' && e.type !== 'submit' && e.type !== 'button')
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !e.getAttribute('aria-labelledby'))
  .map(e => e.outerHTML)"""


@pytest.mark.parametrize("name", list(PAGES))
def test_fields_are_labelled(site, page, shot, name):
    org = site.create_org("a11y", settings={"signupMode": "open"})
    route, fields = PAGES[name]
    resp = page.goto(path(route, org=org["slug"]))
    assert resp.status == 200, f"GET {route} answered {resp.status}"
    shot(page, name)
    assert page.evaluate(UNLABELLED) == []
    for field, auto in fields.items():
        loc = page.locator(f'form input[name="{field}"]').first
        assert loc.get_attribute("autocomplete") == auto, f"{field} on {route}"
    # Every form carries its csrf token.
    forms = page.locator('form[method="post"], form[method="POST"]')
    for i in range(forms.count()):
        assert forms.nth(i).locator('input[type="hidden"][name="csrf"]').count() == 1


def test_account_fields_are_labelled(site, page, shot):
    from lk import expect_account, sign_in

    org = site.create_org("a11y-acct")
    user = site.create_user("a11y", org=org["slug"])
    sign_in(page, shot, user["email"], user["password"], org=org["slug"])
    expect_account(page, shot, user["email"])
    assert page.evaluate(UNLABELLED) == []
    pw = page.locator('form[action="/account/password"]')
    assert pw.locator('[name="current_password"]').get_attribute("autocomplete") == "current-password"
    assert pw.locator('[name="new_password"]').get_attribute("autocomplete") == "new-password"
    assert pw.locator('[name="username"]').get_attribute("autocomplete") == "username"
