"""The web console in a real headless Chromium (Debian chromium + chromium-driver, selenium).

Each test drives the console of its own gateway and checks the effect through the byte
stream or the API: a session started by a test client shows up, a mediator spliced from
the UI transforms the echo, removing it restores it, a split from the UI feeds a recipient
socket, kill closes the client, listeners come and go, problem details are shown, and a
token-protected gateway asks for its token. One run also takes a screenshot, written under
.build/ (a test run changes no tracked file); `make console-screenshot` writes it to
docs/console.png instead.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import socket
import threading
import time
from typing import Any, Callable, Iterator

import pytest
import requests

from conftest import ROOT, TOKEN, Gateway, StreamServer, echo_handler, refused_port, split_address, wait_until

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException, TimeoutException, WebDriverException)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_BIN", shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", shutil.which("chromedriver") or "/usr/bin/chromedriver")
# Where the screenshot goes: under .build/ unless asked (make console-screenshot sets it to
# the README's docs/console.png), so that running the tests changes no tracked file.
SCREENSHOT = pathlib.Path(os.environ.get("SPLICEGATE_SCREENSHOT", ROOT / ".build" / "e2e" / "console.png"))
README_PICTURE = ROOT / "docs" / "console.png"
WIDTH, HEIGHT = 1280, 800
IO_TIMEOUT_S = 5.0


# -- the browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module, its viewport fixed at 1280×800."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail(f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver "
                    "(scripts/deps.sh test does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--no-proxy-server", "--no-first-run", "--disable-extensions",
                     "--force-color-profile=srgb", "--hide-scrollbars", "--lang=en-US",
                     f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """The browser, left on about:blank afterwards (closing the events stream) and checked
    for script errors."""
    browser.get_log("browser")
    yield browser
    # Network errors (the 4xx/5xx the tests provoke) are expected; script errors are not.
    errors = [entry for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and entry.get("source") != "network"]
    with contextlib.suppress(WebDriverException):
        browser.execute_script("sessionStorage.clear()")
    browser.get("about:blank")
    assert not errors, f"console script errors: {errors}"


def wait_for(driver: Any, predicate: Callable[[Any], Any], timeout: float, message: str) -> Any:
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05,
                             ignored_exceptions=(StaleElementReferenceException,)).until(predicate)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout}s waiting for {message}") from None


def click(driver: Any, css: str, timeout: float, message: str) -> None:
    """Clicks the element matching `css` once it is there, again if a re-render replaced it."""
    def attempt(d: Any) -> bool:
        found = d.find_elements(By.CSS_SELECTOR, css)
        if not found or not found[0].is_enabled():
            return False
        try:
            found[0].click()
        except StaleElementReferenceException:
            return False
        return True
    wait_for(driver, attempt, timeout, message)


def open_console(driver: Any, gateway: Gateway, fragment: str = "") -> None:
    driver.get(gateway.url + "/" + fragment)
    wait_for(driver, lambda d: d.find_element(By.ID, "stream-status").get_attribute("data-state") == "live",
             10, "the events stream to be live")


def row_for_client(driver: Any, client: str) -> Any:
    """The sessions table row whose client column is `client`, or None."""
    return driver.execute_script(
        """return [...document.querySelectorAll('#sessions-body tr')]
             .find(tr => [...tr.cells].some(td => td.textContent === arguments[0])) || null;""", client)


def path_hops(driver: Any) -> list[dict[str, str]]:
    """The hops drawn in the session view, read in one go (the view re-renders under us)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#path .head.hop[data-hop]')]"
        ".map(e => ({id: e.dataset.hop, text: e.textContent}))")


def toast_texts(driver: Any) -> list[str]:
    return [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#toasts .toast")]


# -- sockets -------------------------------------------------------------------------


def connect(address: str, stack: contextlib.ExitStack) -> socket.socket:
    sock = socket.create_connection(split_address(address), timeout=IO_TIMEOUT_S)
    stack.callback(sock.close)
    return sock


def local(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def read_exactly(sock: socket.socket, count: int, timeout: float = IO_TIMEOUT_S) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def round_trip(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line)
    return read_exactly(sock, len(line))


def closed_by_peer(sock: socket.socket, timeout: float = IO_TIMEOUT_S) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


class Recipient:
    """A split recipient: accepts one connection and collects what it receives."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(IO_TIMEOUT_S)
        self.address = "127.0.0.1:%d" % self.server.getsockname()[1]
        self.data = bytearray()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(0.2)
            while True:
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    if self.stopping.is_set():
                        return
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                with self.lock:
                    self.data += chunk

    def received(self) -> bytes:
        with self.lock:
            return bytes(self.data)

    def close(self) -> None:
        """Wakes the thread (shutdown), joins it, and only then closes the socket it used."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=IO_TIMEOUT_S)
        self.server.close()


# -- tests ---------------------------------------------------------------------------


def test_console_files_are_served(demo_gateway: Gateway) -> None:
    index = demo_gateway.get("/")
    assert index.status_code == 200
    assert index.headers["Content-Type"].startswith("text/html")
    assert index.headers["Cache-Control"] == "no-cache"
    assert '<script type="module" src="app.js">' in index.text
    for name, media in [("app.js", "text/javascript"), ("api.js", "text/javascript"),
                        ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")]:
        response = demo_gateway.get(f"/{name}")
        assert response.status_code == 200, name
        assert response.headers["Content-Type"].startswith(media), (name, response.headers)
        again = demo_gateway.get(f"/{name}", headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304, name
    assert demo_gateway.get("/no-such-file.js").status_code == 404
    assert demo_gateway.get("/../Package.swift").status_code == 404
    # Nothing from another host: every reference in the page is relative.
    for path in (ROOT / "web").rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text()
            assert "http://" not in text and "https://" not in text, path


def test_splice_split_remove_and_kill_from_the_console(demo_gateway: Gateway, page: Any) -> None:
    listen = demo_gateway.listeners()[0]["listen"]
    with contextlib.ExitStack() as stack:
        # Background sessions with some traffic, so the table and the picture are not empty.
        background = []
        for index in range(2):
            other = connect(listen, stack)
            assert round_trip(other, b"background %d\n" % index * 40) == b"background %d\n" % index * 40
            background.append(other)

        open_console(page, demo_gateway)
        client = connect(listen, stack)
        started = time.monotonic()
        row = wait_for(page, lambda d: row_for_client(d, local(client)), 2.0,
                       f"the session of {local(client)} in the table")
        assert time.monotonic() - started <= 2.0
        session_id = row.get_attribute("data-session")
        assert round_trip(client, b"hello\n") == b"hello\n"

        # Select it (keyboard: focus the id link, Enter) and splice `upper` into both directions.
        link = row.find_element(By.CSS_SELECTOR, "a.sid")
        link.send_keys(Keys.ENTER)
        wait_for(page, lambda d: d.find_element(By.ID, "detail").get_attribute("data-session") == session_id,
                 3, "the session view")
        Select(page.find_element(By.ID, "splice-mediator")).select_by_value("upper")
        Select(page.find_element(By.ID, "splice-direction")).select_by_value("both")
        page.find_element(By.CSS_SELECTOR, "#splice-form button[type=submit]").click()
        hops = wait_for(page, lambda d: path_hops(d), 5, "the spliced hop in the path")
        assert len(hops) == 1 and "upper" in hops[0]["text"], hops
        hop_id = hops[0]["id"]
        assert round_trip(client, b"hello again\n") == b"HELLO AGAIN\n"
        session = demo_gateway.get(f"/api/v1/sessions/{session_id}").json()
        assert [h["mediator"] for h in session["mediators"]] == ["upper"]
        # Both direction rows show a leg of the hop.
        assert sorted(page.execute_script(
            "return [...document.querySelectorAll(`#path .leg[data-hop='${arguments[0]}']`)].map(e => e.dataset.dir)",
            hop_id)) == ["client_to_server", "server_to_client"]

        # A split from the UI: the recipient gets the client's bytes as delivered (upper-cased).
        recipient = Recipient()
        stack.callback(recipient.close)
        address = page.find_element(By.ID, "split-address")
        address.clear()
        address.send_keys(recipient.address)
        Select(page.find_element(By.ID, "split-direction")).select_by_value("client_to_server")
        page.find_element(By.CSS_SELECTOR, "#split-form button[type=submit]").click()
        wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#path .tap[data-split]"), 5,
                 "the split tap in the path")
        assert round_trip(client, b"split me\n") == b"SPLIT ME\n"
        wait_until(lambda: b"SPLIT ME\n" in recipient.received(), timeout=IO_TIMEOUT_S,
                   message="the split recipient to receive the bytes")

        # The picture for the README: live sessions with traffic, a spliced hop and a split.
        for _ in range(16):
            for index, other in enumerate(background):
                chunk = b"x" * (2048 * (index + 1))
                assert round_trip(other, chunk) == chunk
            assert round_trip(client, b"abc\n") == b"ABC\n"
            time.sleep(0.12)
        committed = picture_bytes(README_PICTURE)
        save_screenshot(page)
        if SCREENSHOT.resolve() != README_PICTURE.resolve():
            assert picture_bytes(README_PICTURE) == committed, f"the test run rewrote {README_PICTURE}"
        wait_until(lambda: recipient.received().endswith(b"ABC\n" * 16), timeout=IO_TIMEOUT_S,
                   message="the recipient to catch up")

        # Remove the hop from the UI: the echo is back to normal, the recipient sees it too.
        click(page, f"button[data-action=remove-hop][data-focus='hop:{hop_id}']", 3, "the hop's remove button")
        wait_for(page, lambda d: not path_hops(d), 10,
                 "the hop to leave the path")
        assert demo_gateway.get(f"/api/v1/sessions/{session_id}").json()["mediators"] == []
        assert round_trip(client, b"plain again\n") == b"plain again\n"
        wait_until(lambda: recipient.received().endswith(b"plain again\n"), timeout=IO_TIMEOUT_S,
                   message="the recipient to get the unmediated bytes")
        assert recipient.received() == b"SPLIT ME\n" + b"ABC\n" * 16 + b"plain again\n"

        # Kill it (two-step button): it leaves the table and the client sees the close.
        kill = page.find_element(By.ID, "kill-button")
        kill.click()
        assert kill.text == "Confirm kill"
        kill.click()
        wait_for(page, lambda d: row_for_client(d, local(client)) is None, 3, "the killed session to leave the table")
        assert closed_by_peer(client), "the client socket was not closed"
        banner = page.find_element(By.ID, "detail-closed")
        assert banner.is_displayed() and "killed" in banner.text
        assert demo_gateway.get(f"/api/v1/sessions/{session_id}").status_code == 404


def picture_bytes(path: pathlib.Path) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def save_screenshot(driver: Any) -> None:
    """Writes SCREENSHOT (a 1280×800 PNG of the page as it is)."""
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    png = driver.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG"), "not a PNG"
    temporary = SCREENSHOT.with_suffix(".png.tmp")
    temporary.write_bytes(png)
    temporary.replace(SCREENSHOT)


def test_add_and_remove_a_listener_from_the_console(demo_gateway: Gateway, page: Any) -> None:
    upstream = demo_gateway.listeners()[0]["upstream"]
    open_console(page, demo_gateway)
    page.find_element(By.CSS_SELECTOR, "#listener-add summary").click()
    page.find_element(By.ID, "listener-name").send_keys("e2e-console")
    page.find_element(By.ID, "listener-upstream").send_keys(upstream)
    page.find_element(By.CSS_SELECTOR, "#listener-form button[type=submit]").click()
    created = wait_until(lambda: [l for l in demo_gateway.listeners() if l.get("name") == "e2e-console"],
                         timeout=5, message="the listener in the API")[0]
    assert not created["listen"].endswith(":0")
    wait_for(page, lambda d: created["listen"] in d.find_element(
        By.CSS_SELECTOR, f"li[data-listener='{created['id']}']").text, 3, "the new listener (bound address) in the list")

    # Its sessions relay (the bound address shown is real), and the filter follows the listener.
    with contextlib.ExitStack() as stack:
        client = connect(created["listen"], stack)
        assert round_trip(client, b"via console listener\n") == b"via console listener\n"
        wait_for(page, lambda d: row_for_client(d, local(client)), 3, "the new listener's session")
        Select(page.find_element(By.ID, "listener-filter")).select_by_value("l1")
        wait_for(page, lambda d: row_for_client(d, local(client)) is None, 2, "the filter to hide it")
        Select(page.find_element(By.ID, "listener-filter")).select_by_value(created["id"])
        wait_for(page, lambda d: row_for_client(d, local(client)), 2, "the filter to show it")
        text_filter = page.find_element(By.ID, "session-filter")
        text_filter.send_keys("no-such-session")
        wait_for(page, lambda d: row_for_client(d, local(client)) is None, 2, "the text filter to hide it")
        text_filter.clear()
        text_filter.send_keys(local(client).split(":")[1])
        wait_for(page, lambda d: row_for_client(d, local(client)), 2, "the text filter to match it")

        click(page, f"li[data-listener='{created['id']}'] button[data-action=remove-listener]", 2, "Remove…")
        click(page, f"li[data-listener='{created['id']}'] .confirm button[data-close-sessions]", 2,
              "…and close sessions")
        wait_for(page, lambda d: not d.find_elements(By.CSS_SELECTOR, f"li[data-listener='{created['id']}']"), 3,
                 "the listener to leave the list")
        assert all(l["id"] != created["id"] for l in demo_gateway.listeners())
        assert closed_by_peer(client), "close_sessions did not close the session"


def test_api_errors_show_the_problem_detail(demo_gateway: Gateway, page: Any) -> None:
    listen = demo_gateway.listeners()[0]["listen"]
    with contextlib.ExitStack() as stack:
        client = connect(listen, stack)
        assert round_trip(client, b"x\n") == b"x\n"
        session_id = wait_until(lambda: demo_gateway.sessions(), timeout=3, message="the session")[0]["id"]
        open_console(page, demo_gateway, f"#/sessions/{session_id}")
        wait_for(page, lambda d: d.find_element(By.ID, "detail").get_attribute("data-session") == session_id,
                 3, "the session view from the URL")
        nowhere = f"127.0.0.1:{refused_port()}"
        expected = demo_gateway.post(f"/api/v1/sessions/{session_id}/splits",
                                     json={"address": nowhere, "direction": "client_to_server", "on_slow": "drop"})
        assert expected.status_code == 502, expected.text
        page.find_element(By.ID, "split-address").send_keys(nowhere)
        page.find_element(By.CSS_SELECTOR, "#split-form button[type=submit]").click()
        toast = wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#toasts .toast-error"), 5,
                         "an error notice")[0]
        detail = expected.json()["detail"]
        assert detail.split(nowhere)[0] in toast.text and nowhere in toast.text, (toast.text, detail)
        assert toast.get_attribute("role") == "alert"
        # A 422 comes back with the API's own words too.
        address = page.find_element(By.ID, "split-address")
        address.clear()
        address.send_keys("not an address")
        page.find_element(By.CSS_SELECTOR, "#split-form button[type=submit]").click()
        wait_for(page, lambda d: any("address" in t and ("422" in t or "Invalid" in t or "invalid" in t)
                                     for t in toast_texts(d)), 5, "the 422 detail")
        assert demo_gateway.get(f"/api/v1/sessions/{session_id}").json()["splits"] == []


def test_failover_from_the_console(demo_gateway: Gateway, page: Any) -> None:
    upstream = demo_gateway.listeners()[0]["upstream"]
    replica = StreamServer(echo_handler)
    try:
        listener = demo_gateway.create_listener(
            name="replicated", listen="127.0.0.1:0", upstream=upstream,
            splits=[{"address": replica.address, "direction": "client_to_server", "on_slow": "block",
                     "failover": True}])
        with contextlib.ExitStack() as stack:
            client = connect(listener["listen"], stack)
            assert round_trip(client, b"before\n") == b"before\n"
            session = wait_until(lambda: demo_gateway.sessions(listener=listener["id"]), timeout=3,
                                 message="the session")[0]
            open_console(page, demo_gateway, f"#/sessions/{session['id']}")
            click(page, "button[data-action=failover]", 5, "the fail-over button")
            wait_until(lambda: demo_gateway.get(f"/api/v1/sessions/{session['id']}").json()["server"] == replica.address,
                       timeout=5, message="the session to be served by the replica")
            assert round_trip(client, b"after\n") == b"after\n"
            wait_for(page, lambda d: replica.address in d.find_element(By.CSS_SELECTOR, "#path .endpoint.server").text,
                     3, "the replica as the server in the path")
    finally:
        replica.close()


def test_token_prompt_on_401(token_gateway: Gateway, page: Any) -> None:
    first = token_gateway.create_listener(name="guarded", listen="127.0.0.1:0", upstream=f"127.0.0.1:{refused_port()}")
    page.get(token_gateway.url + "/")
    dialog = page.find_element(By.ID, "token-dialog")
    wait_for(page, lambda d: dialog.get_attribute("open") is not None, 5, "the token prompt")
    field = page.find_element(By.ID, "token-input")
    assert page.switch_to.active_element == field
    field.send_keys("wrong-token", Keys.ENTER)
    wait_for(page, lambda d: "rejected" in d.find_element(By.ID, "token-reason").text
             and dialog.get_attribute("open") is not None, 5, "the prompt to say the token was rejected")
    field.clear()
    field.send_keys(TOKEN, Keys.ENTER)
    wait_for(page, lambda d: dialog.get_attribute("open") is None, 5, "the prompt to close")
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, f"li[data-listener='{first['id']}']"), 5,
             "the listeners after the token")
    assert page.execute_script("return sessionStorage.getItem('splicegate.token')") == TOKEN
    # The events stream works with the token (?access_token=): a new listener appears without polling.
    wait_for(page, lambda d: d.find_element(By.ID, "stream-status").get_attribute("data-state") == "live", 5,
             "the events stream")
    second = token_gateway.create_listener(name="second", listen="127.0.0.1:0", upstream=f"127.0.0.1:{refused_port()}")
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, f"li[data-listener='{second['id']}']"), 2,
             "a listener.added event to show the new listener")
    # A reload in the same tab keeps the token: no prompt.
    page.refresh()
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, f"li[data-listener='{second['id']}']"), 5,
             "the listeners after a reload")
    assert page.find_element(By.ID, "token-dialog").get_attribute("open") is None


def test_narrow_window_keeps_the_sessions_usable(demo_gateway: Gateway, page: Any) -> None:
    listen = demo_gateway.listeners()[0]["listen"]
    page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                         {"width": 420, "height": 860, "deviceScaleFactor": 1, "mobile": False})
    try:
        with contextlib.ExitStack() as stack:
            client = connect(listen, stack)
            assert round_trip(client, b"narrow\n") == b"narrow\n"
            open_console(page, demo_gateway)
            row = wait_for(page, lambda d: row_for_client(d, local(client)), 3, "the session row")
            assert page.execute_script("return document.documentElement.scrollWidth") <= 420
            row.find_element(By.CSS_SELECTOR, "a.sid").click()
            kill = page.find_element(By.ID, "kill-button")
            wait_for(page, lambda d: kill.is_displayed(), 3, "the session view")
            assert page.find_element(By.ID, "splice-mediator").is_displayed()
    finally:
        page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                             {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})


def test_every_control_is_labelled(demo_gateway: Gateway, page: Any) -> None:
    open_console(page, demo_gateway)
    unlabelled = page.execute_script("""
        return [...document.querySelectorAll('input, select, button, textarea')]
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                       && !(e.textContent || '').trim())
          .map(e => e.outerHTML.slice(0, 120));""")
    assert unlabelled == []


def downloaded(directory: pathlib.Path, name: str) -> pathlib.Path | None:
    """The finished download `name` in `directory` (Chromium writes `.crdownload` until done)."""
    path = directory / name
    return path if path.exists() and not (directory / f"{name}.crdownload").exists() else None


def test_capture_a_session_and_a_listener_from_the_console(demo_gateway: Gateway, page: Any,
                                                           tmp_path: pathlib.Path) -> None:
    """Capture on a session streams to a download that tshark follows byte-exact, with a live
    peek of each direction; Capture on a listener records a session opened afterwards."""
    from capture_tools import assert_clean, follow, streams

    page.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    listener = demo_gateway.listeners()[0]
    open_console(page, demo_gateway)
    with contextlib.ExitStack() as stack:
        client = connect(listener["listen"], stack)
        row = wait_for(page, lambda d: row_for_client(d, local(client)), 5, "the session in the table")
        session_id = row.get_attribute("data-session")
        row.find_element(By.CSS_SELECTOR, "a.sid").send_keys(Keys.ENTER)
        click(page, "#capture-button", 5, "the session's Capture button")
        wait_until(lambda: demo_gateway.get(f"/api/v1/sessions/{session_id}").json()["captures"],
                   message="the session to list the console's capture")
        assert page.find_element(By.ID, "capture-button").text == "Stop capture"
        sent = b"hello peek \x01\x02\n" * 3
        assert round_trip(client, sent) == sent
        peek = "return [document.getElementById('peek-c2s-text')?.textContent, document.getElementById('peek-s2c-text')?.textContent]"
        text = wait_for(page, lambda d: (lambda both: "hello peek" in (both[0] or "") and both[1] and both[0])(
            d.execute_script(peek)), 5, "the peek panel")
        assert "hello peek ··" in text
        assert "68 65 6c 6c 6f 20 70 65 65 6b 20 01 02 0a" in page.find_element(By.ID, "peek-c2s-hex").text

        # Capture the listener too, then open a session it must include.
        click(page, f"button[data-action=capture-listener][data-focus='lc-{listener['id']}']", 5,
              "the listener's Capture button")
        wait_for(page, lambda d: d.find_element(
            By.CSS_SELECTOR, f"button[data-focus='lc-{listener['id']}']").text == "Stop capture", 5,
            "the listener's capture to run")
        late = connect(listener["listen"], stack)
        late_client = local(late)
        wait_until(lambda: any(s["captures"] for s in demo_gateway.sessions() if s["client"] == late_client),
                   message="the new session to join the listener capture")
        assert round_trip(late, b"late session\n") == b"late session\n"
        late.shutdown(socket.SHUT_WR)
        assert closed_by_peer(late)

        # The session ends: its capture ends and is saved.
        client.shutdown(socket.SHUT_WR)
        assert closed_by_peer(client)
        session_file = wait_for(page, lambda d: downloaded(tmp_path, f"splicegate-{session_id}.pcapng"), 10,
                                "the session capture's download")
        click(page, f"button[data-focus='lc-{listener['id']}']", 5, "Stop capture on the listener")
        listener_file = wait_for(page, lambda d: downloaded(tmp_path, f"splicegate-{listener['id']}.pcapng"), 10,
                                 "the listener capture's download")

    assert_clean(session_file)
    client_stream = next(s for s in streams(session_file) if s["interface"] == "client")
    assert follow(session_file, client_stream["stream"])[client_stream["stream"]] == (sent, sent)
    assert_clean(listener_file)
    late_stream = next(s for s in streams(listener_file)
                       if s["interface"] == "client" and f"{s['src'][0]}:{s['src'][1]}" == late_client)
    assert follow(listener_file, late_stream["stream"])[late_stream["stream"]] == (b"late session\n",) * 2
