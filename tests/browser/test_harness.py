"""The harness itself: the server starts, seeding works, Chromium launches and screenshots."""

from playwright.sync_api import expect


def test_server_seeding_and_browser(site, mail, page, shot):
    org = site.create_org("harness")
    user = site.create_user("harness", org=org["slug"], role="owner")
    token = site.login_api(user["email"], user["password"], org["slug"])
    me = site.api("GET", "/auth/me", token=token, org=org["slug"])
    assert me["user"]["email"] == user["email"]

    resp = page.goto("/healthz")
    assert resp.status == 200
    shot(page, "healthz")

    # Mail goes out over real SMTP to the sink.
    mark = mail.mark()
    site.api("POST", "/auth/forgot-password", {"email": user["email"]}, org=org["slug"])
    link = mail.link(user["email"], after=mark)
    assert link.startswith(site.base + "/") and "token=" in link
