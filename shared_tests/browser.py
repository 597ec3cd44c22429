"""Real headless Chromium through Selenium, and the waits the browser tests use.

Which browser: CHROME_BIN and CHROMEDRIVER when set, else Debian's chromium and chromedriver on
the PATH, else whatever Chrome Selenium Manager finds on a laptop. Every page gets a small script
(before its own) that keeps a list of its WebSockets, so a test can wait until the page's socket
is open, whatever the page calls it, instead of sleeping.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from tools.course import REPO
from tools.grading.sandbox import NO_SANDBOX, Sandbox, descendants, signal_quietly

WAIT = 10  # seconds for anything a page should do (it takes milliseconds)
# A page that has not loaded by then never will; no command to the browser waits longer than
# COMMAND seconds (Selenium's own limit is 120 s a command, then the next one waits again).
PAGE_LOAD = 15
COMMAND = 30
FROZEN_PAGE = (
    f"the page did not load in {PAGE_LOAD} s or stopped answering ({COMMAND} s): a script "
    "on it never ends (a busy loop, or a request with async: false whose answer never "
    "comes) or its server never sent it"
)
CRASHED_PAGE = (
    "the page crashed its tab in the browser: a script on it took more memory than a tab "
    "may have (or broke the tab another way)"
)
WINDOW_SIZE = (840, 560)  # wide enough for the tutorial's 100-column chat log

TRACK_SOCKETS = """
(() => {
  const NativeWebSocket = window.WebSocket;
  const refuse = %s;
  window.__sockets = [];
  window.__socketTimes = [];  // when each was made, in ms: how a page retries
  window.WebSocket = class extends NativeWebSocket {
    constructor(url, ...rest) {
      // To test a refused socket: aim it at a port where nothing listens.
      super(refuse ? 'ws://127.0.0.1:9/refused/' : url, ...rest);
      window.__sockets.push(this);
      window.__socketTimes.push(performance.now());
    }
  };
})();
"""
# Chromium, quiet: no sandbox (root in CI), and no calls home that a closed network refuses.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--ignore-certificate-errors",  # the stage-8 https test serves a self-signed certificate
    "--no-first-run",
    f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
)


class NoBrowser(RuntimeError):
    """No Chromium/Chrome (or its driver) could be started; the message says what to install."""


def sandboxed_driver(driver_path: str, sandbox: Sandbox) -> str:
    """A script that starts chromedriver (and so Chromium) inside `sandbox`."""
    script = Path(tempfile.mkdtemp(prefix="workshop-browser-")) / "chromedriver"
    command = shlex.join(sandbox.wrap_program([driver_path]))
    script.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    script.chmod(0o700)
    return str(script)


def start_browser(sandbox: Sandbox = NO_SANDBOX) -> WebDriver:
    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # An alert() is clicked away as a person would (OK): a page that greets with one still
    # works; what it says there is not on the page, where the checks read.
    options.set_capability("unhandledPromptBehavior", "accept")
    binary = (
        os.environ.get("CHROME_BIN")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if binary:
        options.binary_location = binary
    driver_path = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    script = None
    if driver_path and sandbox.enabled:
        confined = sandbox.for_browser([binary, driver_path])
        driver_path = script = sandboxed_driver(driver_path, confined)
    service = Service(executable_path=driver_path) if driver_path else Service()
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except WebDriverException as error:
        first_line = (error.msg or str(error)).strip().splitlines()[0]
        raise NoBrowser(
            "Could not start Chromium for the browser tests "
            f"({first_line}): install chromium and chromium-driver "
            "(sudo apt-get install chromium chromium-driver) or Google Chrome, "
            "or point CHROME_BIN and CHROMEDRIVER at them."
        ) from None
    finally:
        if script:  # the driver has started from it (or failed to): no longer needed
            shutil.rmtree(Path(script).parent, ignore_errors=True)
    driver.set_page_load_timeout(PAGE_LOAD)
    # Set once the session exists: starting Chromium on a busy machine may take longer.
    driver.command_executor._client_config.timeout = COMMAND
    return driver


def page_failure(error: BaseException) -> str | None:
    """The sentence for an error that says a page froze or crashed its tab (the browser is
    then started again); None for any other error."""
    # A GET that urllib3 tried again, each try timing out.
    if isinstance(error, MaxRetryError):
        error = error.reason
    if isinstance(error, ReadTimeoutError):
        return FROZEN_PAGE
    if isinstance(error, TimeoutException) and "from renderer" in str(error.msg):
        return FROZEN_PAGE
    if isinstance(error, WebDriverException) and "tab crashed" in str(error.msg):
        return CRASHED_PAGE
    return None


def stop_browser(driver: WebDriver) -> None:
    """Quit, then kill whatever is left: a browser with a frozen page may not answer."""
    process = getattr(driver.service, "process", None)  # chromedriver, once started
    family = descendants(process.pid) if process else []
    driver.command_executor._client_config.timeout = 5
    try:
        driver.quit()
    except Exception:  # noqa: BLE001 - it is being killed anyway
        pass
    signal_quietly(family, signal.SIGKILL)


class BrowserKeeper:
    """The session's one Chromium (starting one costs seconds of CPU), started again for
    the next test once a page froze or crashed: the tests after it are not its victims."""

    def __init__(self, sandbox: Sandbox = NO_SANDBOX):
        self.sandbox = sandbox
        self.driver: WebDriver | None = None
        self.broken = False

    def get(self) -> WebDriver:
        if self.broken:
            self.stop()
            self.broken = False
        if self.driver is None:
            self.driver = start_browser(self.sandbox)
        return self.driver

    def stop(self) -> None:
        if self.driver is not None:
            stop_browser(self.driver)
            self.driver = None


def new_window(driver: WebDriver, refuse_sockets: bool = False) -> str:
    """Open a fresh window that tracks its pages' sockets (or makes every socket fail to
    connect, with `refuse_sockets`); return its handle."""
    driver.switch_to.new_window("window")
    script = TRACK_SOCKETS % ("true" if refuse_sockets else "false")
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
    return driver.current_window_handle


def wait_until(driver: WebDriver, condition, failure: str, timeout: float = WAIT):
    """Wait for `condition(driver)` to be truthy; otherwise fail with `failure`."""
    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException as error:
        # The page froze while we waited: say that, not `failure`.
        if page_failure(error):
            raise
        raise AssertionError(f"{failure} (waited {timeout:g} s)") from None


def page_left(element):
    """A wait condition: `element`'s page was replaced (after a form was sent). Selenium's
    staleness_of() lets Chromium's "Node ... does not belong to the document" through when
    the check runs while the page is being swapped: that too means the page is gone."""

    def condition(_driver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return True
            raise
        return False

    return condition


def wait_for_open_socket(driver: WebDriver) -> None:
    wait_until(
        driver,
        lambda d: d.execute_script(
            "return (window.__sockets || []).some(s => s.readyState === 1)"
        ),
        "the room page did not open its WebSocket",
    )


def chat_log_text(driver: WebDriver) -> str:
    """The text of #chat-log, whether it is a <textarea> (the tutorial's) or another element."""
    return driver.execute_script(
        "const log = document.querySelector('#chat-log');"
        "if (!log) return null;"
        "return log.value !== undefined ? log.value : log.innerText;"
    )


def page_text(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def save_side_by_side(
    driver: WebDriver, handles: list[str], captions: list[str], path: Path
) -> None:
    """Screenshot each window and save them next to each other as one PNG (for the docs)."""
    save_sheet([window_shot(driver, handle) for handle in handles], captions, path)


def window_shot(driver: WebDriver, handle: str):
    """A screenshot of one window, as a PIL image."""
    from io import BytesIO

    from PIL import Image

    driver.switch_to.window(handle)
    # No focus, no blinking caret: the same page gives the same pixels, run after run.
    driver.execute_script(
        "document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);"
    )
    return Image.open(BytesIO(driver.get_screenshot_as_png())).convert("RGB")


def save_sheet(shots: list, captions: list[str], path: Path) -> None:
    """Save screenshots next to each other, each under its caption, as one PNG."""
    from PIL import Image, ImageDraw

    caption_height, gap = 28, 12
    width = sum(shot.width for shot in shots) + gap * (len(shots) - 1)
    height = max(shot.height for shot in shots) + caption_height
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for shot, caption in zip(shots, captions, strict=True):
        draw.text((x + 8, 8), caption, fill="black")
        sheet.paste(shot, (x, caption_height))
        x += shot.width + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)


def repository_screenshot(name: str) -> Path:
    """Where the browser tests save screenshot `name` of this repository's stages: with
    SCREENSHOTS=1 (`make test SCREENSHOTS=1` refreshes the docs), the docs' image folder
    when a docs page shows it; else .workshop/screenshots, so an ordinary run leaves the
    checkout as it was (every image shows the time of its run)."""
    from tools.docs import SCREENSHOTS, shown_in_docs

    if os.environ.get("SCREENSHOTS") == "1" and shown_in_docs(name):
        return SCREENSHOTS / name
    folder = REPO / ".workshop" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
