"""The review dashboard end to end in a real headless Chromium (Debian `chromium` and
`chromium-driver`, driven by Selenium with the driver path given explicitly: nothing is
downloaded). A reviewer signs in, approves one release and rejects another by clicking;
the registry must record both, and the approved bundle must verify.

Skipped with a message when Chromium or its driver is not installed
(`apt-get install -y chromium chromium-driver`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from reports.registry import Registry
from test_release import PASSWORDS, REVIEWERS, key_file, stage_run, verify

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
SCRIPT = Path(__file__).resolve().parents[1] / "app" / "dashboard.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dashboard(tmp_path):
    reviewers = tmp_path / "reviewers.yaml"
    reviewers.write_text(yaml.safe_dump(REVIEWERS))  # password hashes and public keys
    (tmp_path / "home" / "keys").mkdir(parents=True)
    key_file(tmp_path / "home" / "keys", "bob")  # bob signs with his key on this machine
    db = tmp_path / "registry.db"
    reg = Registry(db)
    runs = [stage_run(reg, tmp_path, run_by="alice", key=k) for k in ("first", "second")]
    port = _free_port()
    env = {**os.environ, "SYNTHKIT_REGISTRY": str(db), "SYNTHKIT_REVIEWERS": str(reviewers),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "SYNTHKIT_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(SCRIPT), "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--server.headless", "true",
                             "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
                             "--server.fileWatcherType", "none"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])
        time.sleep(0.5)
    yield {"url": url, "reg": reg, "runs": runs, "tmp": tmp_path}
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, xpath: str, timeout: float = 60):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        ec.element_to_be_clickable(("xpath", xpath)))


def _present(driver, xpath: str, timeout: float = 60):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located(("xpath", xpath)))


def _do(driver, xpath: str, act, timeout: float = 60) -> None:
    """Find the element and act on it. A Streamlit rerun replaces DOM nodes, so a node found
    a moment ago can be stale by the time it is clicked: find it again until the action
    goes through (a stale node takes no input, so nothing is done twice)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def attempt(d):
        element = ec.element_to_be_clickable(("xpath", xpath))(d)
        if not element:
            return False
        act(element)
        return True

    WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(attempt)


def _button(text: str) -> str:
    return f"//button[.//p[normalize-space()='{text}']]"


def _until(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.3)


def _decide(driver, run_id: str, button: str, reason: str) -> None:
    """Pick `run_id` in the queue (its label ends with the id's last 6 characters), type
    the reason and press the button."""
    _do(driver, f"//label[.//p[contains(normalize-space(), '{run_id[-6:]}')]]", lambda e: e.click())
    _wait(driver, f"//*[contains(normalize-space(), 'run {run_id}')]")
    time.sleep(1)  # let the rerun for the new choice settle before typing
    _do(driver, "//textarea[contains(@aria-label, 'Reason')]", lambda e: e.send_keys(reason))
    _do(driver, _button(button), lambda e: e.click())


def test_reviewer_approves_and_rejects_in_a_real_browser(dashboard, browser):
    reg, (first, second) = dashboard["reg"], dashboard["runs"]
    browser.get(dashboard["url"])
    name = _wait(browser, "//input[@aria-label='Reviewer name']")
    assert first not in browser.page_source and second not in browser.page_source  # anonymous: nothing
    name.send_keys("bob")
    _wait(browser, "//input[@aria-label='Password']").send_keys(PASSWORDS["bob"])
    _do(browser, _button("Sign in"), lambda e: e.click())
    _wait(browser, "//*[normalize-space()='Release gate']")
    browser.save_screenshot(str(dashboard["tmp"] / "signed-in.png"))

    # the queue is newest first: the second staged run is selected; approve it
    _decide(browser, second, "Approve release", "fidelity and leakage within the default policy")
    _until(lambda: reg.status(second) == "released")
    assert verify(reg, second).ok
    assert reg.reviews(second)[0].reviewer == "bob"

    # the queue now holds only the first run: reject it
    _decide(browser, first, "Reject", "pair trends too weak for this study")
    _until(lambda: reg.status(first) == "rejected")
    assert reg.reviews(first)[0].reason == "pair trends too weak for this study"
    assert not (dashboard["tmp"] / "releases" / first).exists()
    _wait(browser, "//*[contains(normalize-space(), 'No release is waiting for review')]")
    browser.save_screenshot(str(dashboard["tmp"] / "done.png"))


def test_runner_cannot_approve_in_a_real_browser(dashboard, browser):
    reg, (_, second) = dashboard["reg"], dashboard["runs"]
    browser.get(dashboard["url"])
    _wait(browser, "//input[@aria-label='Reviewer name']").send_keys("alice")
    _wait(browser, "//input[@aria-label='Password']").send_keys(PASSWORDS["alice"])
    _do(browser, _button("Sign in"), lambda e: e.click())
    _wait(browser, "//*[normalize-space()='Release gate']")
    # the button renders after the heading: wait for it (and the reason) to be on the page
    _present(browser, _button("Approve release"))
    _present(browser, "//*[contains(normalize-space(), 'four-eyes')]")
    approve = browser.find_element("xpath", _button("Approve release"))
    assert not approve.is_enabled()
    assert reg.status(second) == "pending_review"
