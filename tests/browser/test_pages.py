"""The pages look like a product: the stylesheet loads under the strict CSP, nothing is
blocked, and the security headers of API.md §12 are sent."""

from lk import path


def test_login_page_styled_and_no_csp_violations(site, page, shot):
    org = site.create_org("look", name="Look & Feel")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    resp = page.goto(path("/login", org=org["slug"]))
    assert resp.status == 200
    assert "text/html" in resp.headers.get("content-type", "")
    assert resp.headers.get("referrer-policy") == "no-referrer"
    csp = resp.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp
    shot(page, "login")
    rules = page.evaluate("""() => [...document.styleSheets]
        .reduce((n, s) => { try { return n + s.cssRules.length } catch (e) { return n } }, 0)""")
    assert rules > 0, "no stylesheet rules loaded"
    css = page.request.get(site.url("/assets/style.css"))
    assert css.status == 200 and "text/css" in css.headers.get("content-type", "")
    blocked = [e for e in errors if "Content Security Policy" in e or "Refused" in e]
    assert blocked == [], blocked
    # The org's name brands its page.
    assert "Look & Feel" in page.locator("body").inner_text()


def test_root_without_session_goes_to_login(site, page, shot):
    site.create_org("root")  # not an empty deployment: no first-run setup
    page.goto("/")
    shot(page, "root")
    assert "/login" in page.url
