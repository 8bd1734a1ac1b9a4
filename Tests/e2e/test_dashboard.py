"""The dashboard in headless Chromium (Debian's chromium + chromedriver, driven by Selenium): sign in
(HttpOnly session cookie, nothing in localStorage), add a web target, scan it with live progress until
its findings are final, filter findings by severity chip, open the detail drawer (evidence, remediation,
compliance), suppress one; the page's CSP forbids inline code, and a change with the cookie but without
the CSRF header is refused."""
import os
import time

import pytest
import requests

from test_web import sites  # noqa: F401

pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
              "--no-proxy-server", "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, cond, timeout=30):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(cond)


def test_dashboard_sign_in_scan_triage(stack, signup, sites, browser):  # noqa: F811
    owner, body, password = signup("dash")
    email = body["user"]["email"]
    page = requests.get(stack.url + "/", timeout=10)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in page.text and " style=" not in page.text and " onclick" not in page.text

    d = browser
    d.get(stack.url + "/")
    wait(d, EC.visibility_of_element_located((By.ID, "login-form")))
    d.find_element(By.ID, "email").send_keys(email)
    d.find_element(By.ID, "password").send_keys("wrong password 123")
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(d, lambda x: x.find_element(By.ID, "login-error").text != "")
    d.find_element(By.ID, "password").clear()
    d.find_element(By.ID, "password").send_keys(password + Keys.ENTER)
    wait(d, EC.visibility_of_element_located((By.ID, "nav")))
    wait(d, lambda x: x.find_element(By.ID, "who").text == email)
    cookies = {c["name"]: c for c in d.get_cookies()}
    assert cookies["vigil_session"]["httpOnly"] is True and cookies["vigil_session"]["sameSite"] == "Strict"
    assert "vigil_session" not in d.execute_script("return document.cookie")
    assert d.execute_script("return window.localStorage.length + window.sessionStorage.length") == 0

    # Add the planted site (its private CA pasted), then scan it and watch the progress.
    d.find_element(By.CSS_SELECTOR, ".tab[data-view=connections]").click()
    d.find_element(By.ID, "web-name").send_keys("planted")
    d.find_element(By.ID, "web-url").send_keys(sites["planted"]["url"])
    d.execute_script("document.getElementById('web-ca').value = arguments[0]", sites["ca_text"])
    d.find_element(By.CSS_SELECTOR, "#web-form button").click()
    wait(d, lambda x: "planted" in x.find_element(By.ID, "connections-table").text)
    d.find_element(By.CSS_SELECTOR, ".tab[data-view=scans]").click()
    wait(d, lambda x: len(Select(x.find_element(By.ID, "scan-connection")).options) == 1)
    d.find_element(By.CSS_SELECTOR, "#scan-form button").click()
    seen = set()
    deadline = time.time() + 120
    while time.time() < deadline:
        seen.add(d.find_element(By.ID, "progress").get_attribute("aria-valuenow"))
        if "findings are up to date" in d.find_element(By.ID, "progress-text").text:
            break
        time.sleep(0.1)
    assert "findings are up to date" in d.find_element(By.ID, "progress-text").text and "100" in seen
    wait(d, lambda x: "completed" in x.find_element(By.ID, "scans-table").text)

    # Findings: the critical chip narrows the table; a row opens the drawer with evidence and controls.
    d.find_element(By.CSS_SELECTOR, ".tab[data-view=findings]").click()
    wait(d, lambda x: len(x.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr")) >= 40)
    chip = d.find_element(By.CSS_SELECTOR, ".chip[data-sev=critical]")
    chip.click()
    wait(d, lambda x: chip.get_attribute("aria-pressed") == "true")
    wait(d, lambda x: all(r.find_element(By.TAG_NAME, "td").text == "critical"
                          for r in x.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr")) and
         0 < len(x.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr")) < 20)
    rows = d.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr")
    before = len(rows)
    git = next(r for r in rows if "web.exposure.git" in r.text)
    git.send_keys(Keys.ENTER)  # keyboard opens it as well as a click
    wait(d, EC.visibility_of_element_located((By.ID, "drawer")))
    assert d.find_element(By.ID, "drawer-title").text == "The .git directory is served"
    assert "/.git/" in d.find_element(By.ID, "drawer-evidence").text
    assert "pci_dss_4_0" in d.find_element(By.ID, "drawer-compliance").text
    assert d.find_element(By.ID, "drawer-remediation").text
    d.find_element(By.ID, "triage-reason").send_keys("public mirror")
    d.find_element(By.ID, "suppress").click()
    wait(d, lambda x: len(x.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr")) == before - 1)
    assert owner.get(f"/findings/?check_id=web.exposure.git").json()["items"][0]["status"] == "suppressed"

    # The cookie alone cannot change anything (CSRF); with the header it can. Reads work with the cookie.
    jar = {"vigil_session": cookies["vigil_session"]["value"], "vigil_csrf": cookies["vigil_csrf"]["value"]}
    conn = owner.get("/connections/").json()["items"][0]["id"]
    r = requests.post(stack.url + "/api/v1/scans/trigger", json={"connection_id": conn}, cookies=jar, timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
    r = requests.post(stack.url + "/api/v1/scans/trigger", json={"connection_id": conn}, cookies=jar, timeout=10,
                      headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    assert requests.get(stack.url + "/api/v1/scans/", cookies=jar, timeout=10).status_code == 200
    r = requests.post(stack.url + "/api/v1/scans/trigger", json={"connection_id": conn}, cookies=jar, timeout=10,
                      headers={"X-CSRF-Token": jar["vigil_csrf"]})
    assert r.status_code == 202, r.text

    # Signing out clears the session.
    d.find_element(By.ID, "logout").click()
    wait(d, EC.visibility_of_element_located((By.ID, "login-form")))
    assert "vigil_session" not in {c["name"] for c in d.get_cookies()}
    logs = [e for e in d.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert not logs, logs


def test_dashboard_sign_up_overview_approvals_settings(stack, browser):
    import uuid
    d = browser
    d.get(stack.url + "/")
    wait(d, EC.visibility_of_element_located((By.ID, "signup-form")))
    email = f"ui-{uuid.uuid4().hex[:8]}@example.com"
    d.find_element(By.ID, "su-name").send_keys("Ui User")
    d.find_element(By.ID, "su-workspace").send_keys("UI workspace")
    d.find_element(By.ID, "su-email").send_keys(email)
    d.find_element(By.ID, "su-password").send_keys("short")
    d.find_element(By.CSS_SELECTOR, "#signup-form button").click()
    # The browser's own validation (minlength) or the API's 422 stops it; a real password goes through.
    time.sleep(0.5)
    assert d.find_element(By.ID, "nav").is_displayed() is False
    d.find_element(By.ID, "su-password").clear()
    d.find_element(By.ID, "su-password").send_keys("correct horse battery")
    d.find_element(By.CSS_SELECTOR, "#signup-form button").click()
    wait(d, EC.visibility_of_element_located((By.ID, "overview")))
    wait(d, lambda x: x.find_element(By.ID, "who").text == email)
    assert "UI workspace" in Select(d.find_element(By.ID, "workspace")).first_selected_option.text
    wait(d, lambda x: "Plan:" in x.find_element(By.ID, "plan").text)
    wait(d, lambda x: len(x.find_elements(By.CSS_SELECTOR, "#compliance-table tbody tr")) >= 4)
    assert len(d.find_elements(By.CSS_SELECTOR, "#trend svg rect")) == 24
    assert d.execute_script("return window.localStorage.length") == 0

    d.find_element(By.CSS_SELECTOR, ".tab[data-view=approvals]").click()
    wait(d, EC.visibility_of_element_located((By.ID, "approvals-empty")))

    d.find_element(By.CSS_SELECTOR, ".tab[data-view=settings]").click()
    d.find_element(By.ID, "key-name").send_keys("ci key")
    d.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait(d, lambda x: "vgl_" in x.find_element(By.ID, "new-key").text)
    key = d.find_element(By.ID, "new-key").text.split(": ")[-1]
    assert requests.get(stack.url + "/api/v1/auth/me", headers={"x-api-key": key}, timeout=10).status_code == 200
    wait(d, lambda x: "ci key" in x.find_element(By.ID, "keys-table").text)
    assert key not in d.find_element(By.ID, "keys-table").text
    d.find_element(By.CSS_SELECTOR, "#keys-table tbody button").click()
    wait(d, lambda x: "ci key" not in x.find_element(By.ID, "keys-table").text)
    deadline = time.time() + 10
    while time.time() < deadline and requests.get(stack.url + "/api/v1/auth/me", headers={"x-api-key": key}, timeout=10).status_code == 200:
        time.sleep(0.3)
    assert requests.get(stack.url + "/api/v1/auth/me", headers={"x-api-key": key}, timeout=10).status_code == 401

    Select(d.find_element(By.ID, "report-format")).select_by_visible_text("pdf")
    d.find_element(By.CSS_SELECTOR, "#report-form button").click()
    link = wait(d, lambda x: x.find_element(By.CSS_SELECTOR, "#reports-list a"))
    jar = {c["name"]: c["value"] for c in d.get_cookies()}
    r = requests.get(link.get_attribute("href"), cookies=jar, timeout=15)
    assert r.status_code == 200 and r.content[:5] == b"%PDF-"


ARTIFACTS = os.environ.get("VIGIL_ARTIFACTS", os.path.join(os.path.dirname(__file__), "artifacts", "dashboard"))

# Labels, accessible names and text contrast (WCAG AA 4.5:1) of what is on screen: the equivalent of an
# axe-core run for the rules this page can break.
A11Y = r"""
function lum(c) { const v = c.match(/[\d.]+/g).slice(0, 3).map(Number).map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; }
function bg(el) { for (let e = el; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; const a = c.match(/[\d.]+/g);
  if (a && (a.length < 4 || Number(a[3]) > 0)) return c; } return "rgb(255, 255, 255)"; }
const problems = [];
const visible = (e) => e.offsetParent !== null || getComputedStyle(e).position === "fixed";
for (const e of document.querySelectorAll("input, select, textarea")) {
  if (visible(e) && !(e.labels && e.labels.length) && !e.getAttribute("aria-label")) problems.push("no label: " + (e.id || e.outerHTML.slice(0, 60)));
}
for (const b of document.querySelectorAll("button")) {
  if (visible(b) && !(b.textContent.trim() || b.getAttribute("aria-label"))) problems.push("button without a name: " + b.outerHTML.slice(0, 60));
}
for (const e of document.querySelectorAll("h1, h2, h3, p, td, th, button, label, a, li, dt, dd")) {
  if (!visible(e) || !e.textContent.trim()) continue;
  const fg = lum(getComputedStyle(e).color), back = lum(bg(e));
  const ratio = (Math.max(fg, back) + 0.05) / (Math.min(fg, back) + 0.05);
  if (ratio < 4.5) problems.push("contrast " + ratio.toFixed(2) + ": " + e.tagName + " " + e.textContent.trim().slice(0, 30));
}
if (!document.documentElement.lang) problems.push("no lang");
return problems;
"""


@pytest.fixture(scope="module")
def journey_moto():
    from conftest import seeded_moto_server
    yield from seeded_moto_server()


def test_dashboard_journey_with_the_moto_account(stack, signup, journey_moto, browser):
    """Sign in, connect the moto account, scan, watch it finish, open a finding, suppress it, approve a
    fix an analyst requested; screenshots of each step in Tests/e2e/artifacts/dashboard; every view passes
    the accessibility check; no console errors."""
    from conftest import join_workspace
    from test_remediation import WRITE_KEYS, set_policy, wait_action
    endpoint, manifest = journey_moto
    os.makedirs(ARTIFACTS, exist_ok=True)
    owner, body, password = signup("journey")
    d = browser
    shot = lambda name: d.save_screenshot(os.path.join(ARTIFACTS, name + ".png"))

    def accessible(view):
        problems = d.execute_script(A11Y)
        assert not problems, (view, problems)

    d.get(stack.url + "/")
    wait(d, EC.visibility_of_element_located((By.ID, "login-form")))
    accessible("login")
    shot("01-sign-in")
    d.find_element(By.ID, "email").send_keys(body["user"]["email"])
    d.find_element(By.ID, "password").send_keys(password + Keys.ENTER)
    wait(d, EC.visibility_of_element_located((By.ID, "overview")))
    accessible("overview")

    d.find_element(By.CSS_SELECTOR, ".tab[data-view=connections]").click()
    accessible("connections")
    d.find_element(By.ID, "aws-name").send_keys("moto")
    d.find_element(By.ID, "aws-key").send_keys(manifest["access_key_id"])
    d.find_element(By.ID, "aws-secret").send_keys(manifest["secret_access_key"])
    d.find_element(By.ID, "aws-endpoint").send_keys(endpoint)
    d.find_element(By.CSS_SELECTOR, "#aws-form button").click()
    wait(d, lambda x: "moto" in x.find_element(By.ID, "connections-table").text)
    shot("02-connected")
    conn = owner.get("/connections/").json()["items"][0]["id"]
    assert owner.post(f"/connections/{conn}/remediation-credentials", WRITE_KEYS).status_code == 200
    set_policy(owner, mode="manual")

    d.find_element(By.CSS_SELECTOR, ".tab[data-view=scans]").click()
    accessible("scans")
    wait(d, lambda x: len(Select(x.find_element(By.ID, "scan-connection")).options) == 1)
    d.find_element(By.CSS_SELECTOR, "#scan-form button").click()
    wait(d, lambda x: "findings are up to date" in x.find_element(By.ID, "progress-text").text, timeout=180)
    shot("03-scan-finished")

    d.find_element(By.CSS_SELECTOR, ".tab[data-view=findings]").click()
    wait(d, lambda x: len(x.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr")) >= 20)
    accessible("findings")
    row = next(r for r in d.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr") if "aws.s3.bucket_versioning_disabled" in r.text)
    row.click()
    wait(d, EC.visibility_of_element_located((By.ID, "drawer")))
    accessible("drawer")
    shot("04-finding")
    d.find_element(By.ID, "triage-reason").send_keys("scratch bucket, versioning not needed")
    d.find_element(By.ID, "suppress").click()
    wait(d, EC.invisibility_of_element_located((By.ID, "drawer")))
    suppressed = owner.get("/findings/?status=suppressed&limit=5").json()["items"]
    assert [f["rule_code"] for f in suppressed] == ["aws.s3.bucket_versioning_disabled"]

    # An analyst asks for a fix; the owner approves it in the dashboard and the fix is applied in moto.
    analyst = join_workspace(stack, owner, "analyst")
    sg = next(f for f in owner.get("/findings/?rule_code=aws.ec2.sg_ssh_open_to_world&limit=5").json()["items"])
    action = analyst.post("/remediations/request", {"finding_id": sg["id"]}).json()
    assert action["status"] == "pending_approval", action
    d.find_element(By.CSS_SELECTOR, ".tab[data-view=approvals]").click()
    wait(d, lambda x: "sg" in x.find_element(By.ID, "approvals-table").text.lower() or len(x.find_elements(By.CSS_SELECTOR, "#approvals-table tbody tr")) == 1)
    accessible("approvals")
    shot("05-approval")
    d.find_element(By.XPATH, "//table[@id='approvals-table']//button[text()='Approve']").click()
    wait(d, EC.visibility_of_element_located((By.ID, "approvals-empty")))
    assert wait_action(owner, action["id"])["status"] == "applied"
    shot("06-approved")

    d.find_element(By.CSS_SELECTOR, ".tab[data-view=settings]").click()
    accessible("settings")
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
