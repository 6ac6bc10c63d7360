"""The HTML report in a real headless Chromium: charts are drawn, hostile values stay inert.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (dev extra).
Without them the test skips with the install command; with CI=true it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from etl.report.compare import compare_reports
from etl.report.html import CSP, render_html

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL = (
    "apt-get update && apt-get install -y chromium chromium-driver "
    "(and pip install -e '.[dev]' for selenium)"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2000",
)
CHARTS = (
    "outcomes-over-time",
    "outcomes-by-department",
    "outcomes-by-agent",
    "leads-by-owner",
    "leads-by-pool",
    "leads-by-rule",
)
PAYLOADS = (
    "<script>document.title='pwned';alert('script')</script>",
    "<img src=x onerror=\"document.title='pwned';alert('img')\">",
    "\"><svg onload=alert('svg')>",
    "</title><script>alert('title')</script>",
    "'><iframe srcdoc=\"<script>parent.alert('iframe')</script>\"></iframe>",
    "]]></text><script>alert('cdata')</script>",
)

# Installed before any page script runs (DevTools injection is not subject to the page's CSP):
# records every dialog and blocked load instead of letting it pass unseen.
HOOKS = """
window.__hooked = true;
window.__dialogs = [];
for (const name of ["alert", "confirm", "prompt", "print", "open"]) {
  window[name] = function (message) { window.__dialogs.push(name + ": " + message); return null; };
}
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (event) => window.__violations.push(event.violatedDirective + " " + event.blockedURI));
"""

INSPECT = """
const charts = {};
for (const svg of document.querySelectorAll("svg.chart")) {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll("g.bars rect")].filter((mark) => {
    const drawn = mark.getBoundingClientRect();
    return drawn.width > 0 && drawn.height > 0 && mark.getAttribute("fill");
  });
  charts[svg.dataset.chart] = {width: box.width, height: box.height, marks: marks.length};
}
const handlers = [...document.querySelectorAll("*")].filter(
  (el) => [...el.attributes].some((attr) => attr.name.toLowerCase().startsWith("on")));
return {
  hooked: window.__hooked === true,
  title: document.title,
  dialogs: window.__dialogs,
  violations: window.__violations,
  injected: document.querySelectorAll("script, img, iframe, object, embed, link, style + style")
    .length,
  handlers: handlers.map((el) => el.tagName),
  resources: performance.getEntriesByType("resource").map((entry) => entry.name),
  text: document.body.innerText,
  charts: charts,
};
"""


def _browser_problem() -> str | None:
    missing = [
        p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() and os.access(p, os.X_OK))
    ]
    if missing:
        return f"{' and '.join(missing)} not found"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module, with its profile, home and temp dirs under tmp."""
    problem = _browser_problem()
    if problem:
        message = f"headless Chromium not available ({problem}); install it with: {INSTALL}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    root = tmp_path_factory.mktemp("chromium")
    for name in ("home", "tmp", "profile"):
        (root / name).mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={root / 'profile'}")
    env = {
        **os.environ,
        "HOME": str(root / "home"),
        "TMPDIR": str(root / "tmp"),
        "XDG_CONFIG_HOME": str(root / "home" / ".config"),
        "XDG_CACHE_HOME": str(root / "home" / ".cache"),
    }
    service = Service(executable_path=CHROMEDRIVER, log_output=subprocess.DEVNULL, env=env)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(30)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOKS})
        yield driver
    finally:
        driver.quit()


def hostile_page() -> str:
    """A report whose every export-controlled value is a payload."""
    n = len(PAYLOADS)
    start = pd.Timestamp("2026-11-01T08:00:00Z")
    outcomes = pd.DataFrame(
        {
            "chat_id": [f"c{i}{PAYLOADS[i % n]}" for i in range(12)],
            "outcome": ["matched", "lead_created", "lead_skipped", "invalid_email"] * 3,
            "email_normalized": [f"{PAYLOADS[i % n]}@x.example" for i in range(12)],
            "records": [f"lead:{i};contact:{PAYLOADS[i % n]}" for i in range(12)],
            "reason": [f"not an email address: {PAYLOADS[i % n]}" for i in range(12)],
            "match_count": [2, 0, 0, 0] * 3,
            "chat_started_at": [start + pd.Timedelta(hours=11 * i) for i in range(12)],
            "department": [PAYLOADS[i % 3] for i in range(12)],
            "agent": [PAYLOADS[(i + 3) % n] for i in range(12)],
        }
    )
    rejects = pd.DataFrame(
        {
            "source_file": [f"/exports/{p}.jsonl" for p in PAYLOADS],
            "position": PAYLOADS,
            "kind": ["chat"] * n,
            "reason": PAYLOADS,
            "raw": [p * 40 for p in PAYLOADS],
            "chat_id": list(PAYLOADS),
        }
    )
    report = {
        "run_id": 7,
        "mode": "sync",
        "status": "succeeded",
        "started_at": "2026-11-02T09:00:00+00:00",
        "finished_at": "2026-11-02T09:03:00+00:00",
        "inputs": {"chat_files": 1, "chats_read": 18, "sell_records": {"leads": 1}},
        "outcomes": {"matched": 3, "lead_created": 3, "lead_skipped": 3, "invalid_email": 3},
        "accounting": {"chats_read": 18, "outcomes_total": 12, "balanced": False},
        "writes": {"activities_inserted": 3},
        "assignments": {
            "by_owner": {p: i + 1 for i, p in enumerate(PAYLOADS)},
            "by_pool": {p: 2 for p in PAYLOADS[:2]},
            "by_rule": {p: 1 for p in PAYLOADS[2:]},
        },
        "multi_match_emails": 3,
        "rejects": n,
        "warnings": [f"pool member {p} is not a Sell user" for p in PAYLOADS],
    }
    previous = {**report, "run_id": 6, "mode": PAYLOADS[0]}
    comparison = compare_reports(report, previous, rejects, rejects.iloc[:2])
    return render_html(report, outcomes, rejects, comparison)


def inspect(browser, path: Path) -> dict:
    browser.get(path.as_uri())
    return browser.execute_script(INSPECT)


def assert_no_native_dialog(browser) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check


def test_hostile_report_renders_charts_and_runs_nothing(browser, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(hostile_page(), encoding="utf-8")
    seen = inspect(browser, page)

    assert seen["hooked"], "the dialog hooks did not run; the checks below would prove nothing"
    assert seen["title"] == "chatsell run 7 \u2013 succeeded"
    assert seen["dialogs"] == [] and seen["violations"] == []
    assert seen["injected"] == 0 and seen["handlers"] == []
    assert seen["resources"] == []  # nothing loaded besides the page itself
    assert_no_native_dialog(browser)
    for payload in PAYLOADS[:3]:
        assert payload in seen["text"]  # shown as text
    assert set(seen["charts"]) == set(CHARTS)
    for key, chart in seen["charts"].items():
        assert chart["width"] > 0 and chart["height"] > 0, key
        assert chart["marks"] > 0, key


def test_escaping_holds_without_the_csp(browser, tmp_path):
    """Escaping alone keeps the page inert: the CSP is a second wall, not the only one."""
    text = hostile_page()
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    assert meta in text
    page = tmp_path / "no-csp.html"
    page.write_text(text.replace(meta, ""), encoding="utf-8")
    seen = inspect(browser, page)
    assert seen["hooked"]
    assert seen["title"] == "chatsell run 7 \u2013 succeeded"
    assert seen["dialogs"] == [] and seen["injected"] == 0 and seen["handlers"] == []
    assert seen["resources"] == []
    assert_no_native_dialog(browser)


def test_the_harness_sees_an_injection(browser, tmp_path):
    """A page that does not escape is caught: the checks above can fail."""
    page = tmp_path / "unescaped.html"
    page.write_text(
        "<!DOCTYPE html><title>t</title><body><p>"
        "<img src=x onerror=\"document.title='pwned';alert('img')\"></p>",
        encoding="utf-8",
    )
    seen = inspect(browser, page)
    assert seen["injected"] == 1 and seen["handlers"] == ["IMG"]
    assert seen["dialogs"] == ["alert: img"] and seen["title"] == "pwned"
