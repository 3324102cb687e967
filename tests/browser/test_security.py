"""Negative paths: CSRF, cross-origin posts, open redirects, tokens spent twice, framing, and a
sign-in done with the keyboard alone."""

import re

import pytest
from playwright.sync_api import expect

from lk import (
    ACCOUNT_URL,
    csrf_value,
    expect_account,
    expect_signed_out,
    fill_login,
    form_with,
    navigate_by,
    open_login,
    path,
    sign_in,
    submit_and_wait,
)


@pytest.fixture
def member(site):
    org = site.create_org("sec")
    user = site.create_user("sec", org=org["slug"])
    return org, user


def test_post_without_csrf_field_is_refused(site, page, shot, member):
    org, user = member
    open_login(page, shot, org=org["slug"])
    f = fill_login(page, user["email"], user["password"])
    f.locator('input[name="csrf"]').evaluate("e => e.remove()")
    resp = submit_and_wait(page, f)
    shot(page, "post-without-csrf")
    assert resp.status == 403, f"POST /login without csrf answered {resp.status}"
    expect_signed_out(page, shot)


def test_cross_origin_post_is_refused(site, page, shot, member):
    org, user = member
    open_login(page, shot, org=org["slug"])
    f = form_with(page, "email", "password")
    form = {"csrf": csrf_value(f), "email": user["email"], "password": user["password"],
            "org": org["slug"]}
    # The same request with the browser session's cookie and a valid csrf field, from
    # another origin: refused.
    evil = page.request.post(site.url("/login"), form=form, max_redirects=0,
                             headers={"Origin": "https://evil.example"})
    assert evil.status == 403, f"cross-origin POST /login answered {evil.status}"
    expect_signed_out(page, shot, step="account-after-cross-origin")
    # Control: from Latchkey's own origin the very same request signs in.
    ok = page.request.post(site.url("/login"), form=form, max_redirects=0,
                           headers={"Origin": site.base})
    assert ok.status in (200, 302, 303), f"same-origin POST /login answered {ok.status}"
    page.goto("/account")
    expect_account(page, shot, user["email"], step="account-after-same-origin")


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/\\evil.example/"])
def test_return_to_other_host_is_ignored(site, new_context, shot, member, target):
    org, user = member
    page = new_context().new_page()
    sign_in(page, shot, user["email"], user["password"], org=org["slug"], return_to=target)
    assert "evil.example" not in page.url
    expect_account(page, shot, user["email"])


def test_token_spent_twice(site, mail, new_context, shot, member):
    org, user = member
    first = new_context().new_page()
    open_login(first, shot, org=org["slug"])
    f = form_with(first, "email", without=("password",))
    f.locator('[name="email"]').fill(user["email"])
    mark = mail.mark()
    submit_and_wait(first, f)
    link = mail.link(user["email"], after=mark)
    first.goto(link)
    submit_and_wait(first, form_with(first, "token"))
    expect_account(first, shot, user["email"], step="first-use")

    # The same link in another browser: the page may still show its button, but the POST
    # must answer an error page and make no session.
    second = new_context().new_page()
    second.goto(link)
    shot(second, "second-use-get")
    forms = second.locator("form").filter(has=second.locator('[name="token"]'))
    if forms.count():
        resp = submit_and_wait(second, forms.first)
        shot(second, "second-use-post")
        assert resp.status >= 400 or second.locator("[role=alert]").count(), (
            f"second use answered {resp.status} at {second.url} without an error"
        )
    assert not ACCOUNT_URL.search(second.url)
    expect_signed_out(second, shot, step="second-use-account")

    # Whatever the GET shows, the POST that spends the token must refuse it the second time:
    # post it as the page's form would, with a valid csrf of this browser.
    second.goto(path("/login", org=org["slug"]))
    csrf = csrf_value(form_with(second, "email", "password"))
    token = re.search(r"[?&]token=([^&#]+)", link).group(1)
    resp = second.request.post(site.url("/magic-link"), form={"csrf": csrf, "token": token},
                               max_redirects=0, headers={"Origin": site.base})
    assert 400 <= resp.status < 500, f"second POST /magic-link answered {resp.status}"
    assert "text/html" in resp.headers.get("content-type", "")
    second.set_content(resp.text())
    shot(second, "second-use-post-answer")
    expect_signed_out(second, shot, step="second-use-post-account")


def test_login_page_refuses_framing(site, page, shot):
    resp = page.goto("/login")
    csp = resp.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, f"Content-Security-Policy: {csp!r}"
    shot(page, "login")
    # And a real framing attempt from another page shows nothing of the login form.
    page.set_content(f'<h1>framing test</h1><iframe src="{site.url("/login")}" '
                     'width="600" height="400"></iframe>')
    page.wait_for_timeout(1500)
    shot(page, "framed")
    frame = page.frames[-1] if len(page.frames) > 1 else None
    if frame is not None:
        assert frame.locator("input[name=password]").count() == 0, "the login page rendered in a frame"


def test_keyboard_only_sign_in(site, page, shot, member):
    org, user = member
    page.goto(path("/login", org=org["slug"]))
    shot(page, "login")

    def focused_name():
        return page.evaluate("() => document.activeElement && document.activeElement.name || ''")

    for _ in range(25):
        if focused_name() == "email":  # autofocus may already be there
            break
        page.keyboard.press("Tab")
    assert focused_name() == "email", "Tab never reached the email field"
    page.keyboard.type(user["email"])
    for _ in range(5):
        page.keyboard.press("Tab")
        if focused_name() == "password":
            break
    assert focused_name() == "password", "Tab from email never reached the password field"
    page.keyboard.type(user["password"])
    shot(page, "typed")
    navigate_by(page, lambda: page.keyboard.press("Enter"))
    expect_account(page, shot, user["email"])
