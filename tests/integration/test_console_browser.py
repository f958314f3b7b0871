"""The console in a real browser (Debian's headless Chromium driven by Selenium) against a
real worker, ingress and broker: sign in, find an event, see its attempts, redrive a dead
letter and see it delivered; pause and resume a destination; release a held lane and see
its parked event delivered; and the refusals: no sign-in, a cross-site POST, a read-only
user's redrive.

Screenshots go to .hookstream/screenshots/ (`make test` keeps them for a look)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hookstream.core.access import hash_password, hash_token
from tests.conftest import ROOT, free_port
from tests.integration.test_end_to_end import event_body, post_signed

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = ROOT / ".hookstream" / "screenshots"
USERS = {"alice": ("operator", "alice-password"), "bob": ("read_only", "bob-password")}
TOKEN = "ci-token-0123456789"


def browser() -> Any:
    """Headless Chromium from the system packages (`make browser` installs them)."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail("chromium and chromium-driver are not installed: run `make browser`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.implicitly_wait(0)
    return driver


def users_file(path: Path) -> Path:
    lines = ["users:"]
    for name, (role, password) in USERS.items():
        lines.append(
            f"  - {{name: {name}, role: {role}, password: '{hash_password(password, os.urandom(16))}'}}"
        )
    lines += ["tokens:", f"  - {{name: ci, role: read_only, token: '{hash_token(TOKEN)}'}}"]
    path.write_text("\n".join(lines) + "\n")
    return path


class Console:
    """`hookstream console` as a real subprocess."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hookstream.cli", "console", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, self.log.read_text()
                try:
                    async with session.get(self.url + "/healthz") as r:
                        if r.status == 200 and (await r.json())["index_ready"]:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.3)
        raise TimeoutError("the console did not become ready: " + self.log.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def console_process(tmp_path: Path) -> Iterator[Callable[[Path, int], Console]]:
    started: list[Console] = []

    def start(config: Path, port: int) -> Console:
        console = Console(config, port, tmp_path / f"console{len(started)}.log")
        started.append(console)
        return console

    yield start
    for console in started:
        console.stop()


def wait_until(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except StaleElementReferenceException:
            result = None  # the page was replaced while the check read it: look again
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(interval)


def shoot(driver: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


async def sign_in_http(session: aiohttp.ClientSession, base: str, name: str, password: str) -> str:
    """Sign in as a script would, through the form; returns the session's CSRF token."""
    async with session.get(base + "/signin") as r:
        token = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert token is not None
    async with session.post(
        base + "/signin",
        data={"csrf": token.group(1), "username": name, "password": password, "next": "/dlq"},
    ) as r:
        page = await r.text()
        assert r.status == 200, page
        assert r.url.path == "/dlq", page
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def test_operator_finds_an_event_and_redrives_a_dead_letter_in_the_browser(
    make_settings, worker_process, sink, ingress_url, console_process, tmp_path: Path
) -> None:
    port = free_port()
    settings, config = make_settings(
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "2s"}},
        console={
            "host": "127.0.0.1",
            "port": port,
            "users_file": str(users_file(tmp_path / "users.yaml")),
            "jaeger_url": "http://jaeger.example:16686",
            "refresh": "0.3s",
        },
    )
    broken = {"dead": True}

    def answer(delivery: Any, attempt: int) -> int:
        if delivery.event_id == "flaky-1":
            return 503 if attempt == 1 else 200
        if delivery.event_id == "dead-1":
            return 400 if broken["dead"] else 200
        if delivery.event_id == "held-1":
            return 400  # stays in the DLQ: an operator releases its lane, not it
        return 200

    sink.answer = answer
    worker_process(settings, config)
    base = await ingress_url(settings)
    ids = ["ok-1", "ok-2", "flaky-1", "dead-1"]
    async with aiohttp.ClientSession() as session:
        for n, event_id in enumerate(ids):
            body = event_body(event_id, f"cus_{n}", n)
            assert await post_signed(session, base, settings, "std", event_id, body) == 202
        # One entity's two events: the first dead-lettered holds its lane (`on_dead_letter:
        # hold`, the default), the second is parked behind it until an operator releases it.
        for n, event_id in enumerate(("held-1", "held-2")):
            body = event_body(event_id, "cus_held", n)
            assert await post_signed(session, base, settings, "std", event_id, body) == 202
    await sink.wait_for(3, timeout=60)

    console = console_process(config, port)
    await console.ready()
    url = console.url

    # Nobody signed in: pages redirect to sign-in, the API and every POST answer 401.
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(url + "/events", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"].startswith("/signin")
        for path in ("/api/events", "/api/dlq", "/api/counts"):
            async with anonymous.get(url + path) as r:
                assert r.status == 401
        async with anonymous.post(url + "/dlq/redrive", data={"position": "0/0"}) as r:
            assert r.status == 401
        async with anonymous.get(
            url + "/api/events", headers={"Authorization": "Bearer wrong"}
        ) as r:
            assert r.status == 401
        async with anonymous.get(
            url + "/api/events/flaky-1", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as r:
            assert r.status in (200, 404)  # a token reads the API without a session

    def operator_session() -> None:
        from selenium.webdriver.common.by import By

        driver = browser()

        def message_text() -> str:
            found = driver.find_elements(By.ID, "message")
            return str(found[0].text) if found else ""

        try:
            driver.get(url + "/events")
            assert "/signin" in driver.current_url
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys("wrong")
            driver.find_element(By.ID, "signin").click()
            error = wait_until(lambda: driver.find_elements(By.ID, "signin-error"), timeout=20)
            assert "Unknown user" in error[0].text
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys(USERS["alice"][1])
            driver.find_element(By.ID, "signin").click()
            # A form post's navigation can still be under way when click() returns.
            wait_until(lambda: driver.current_url.endswith("/events"), timeout=20)
            assert "alice" in driver.find_element(By.ID, "who").text

            # Find an event by id and open it: two attempts, 503 then 200.
            def found_flaky() -> bool:
                driver.get(url + "/events")
                box = driver.find_element(By.ID, "q")
                box.clear()
                box.send_keys("flaky-1")
                driver.find_element(By.ID, "search").click()
                links = driver.find_elements(By.CSS_SELECTOR, "a.event-link")
                return [a.text for a in links] == ["flaky-1"] and "delivered" in driver.page_source

            wait_until(found_flaky)
            shoot(driver, "console-search")
            driver.find_element(By.CSS_SELECTOR, "a.event-link").click()
            assert driver.find_element(By.ID, "event-id").text.startswith("flaky-1")
            assert driver.find_element(By.ID, "event-state").text == "delivered"
            attempts = driver.find_elements(By.CSS_SELECTOR, "#attempts li")
            assert len(attempts) == 2
            assert "503" in attempts[0].text
            assert "HTTP 503" in attempts[0].text
            assert "200" in attempts[1].text
            assert "delivered" in attempts[1].text
            assert '"id": "flaky-1"' in driver.find_element(By.ID, "payload").text
            assert "webhook-signature" not in driver.page_source
            trace = driver.find_element(By.ID, "trace-link").get_attribute("href")
            assert re.fullmatch(r"http://jaeger\.example:16686/trace/[0-9a-f]{32}", trace)
            shoot(driver, "console-event")

            # The dead letter: select it, redrive with a confirmation, see it delivered.
            def dead_listed() -> bool:
                driver.get(url + "/dlq")
                return bool(
                    driver.find_elements(By.CSS_SELECTOR, "input.pick[data-event='dead-1']")
                )

            wait_until(dead_listed)
            shoot(driver, "console-dlq")
            broken["dead"] = False
            driver.find_element(By.CSS_SELECTOR, "input.pick[data-event='dead-1']").click()
            driver.find_element(By.ID, "redrive-selected").click()
            assert "Redrive 1 dead letter?" in driver.page_source
            driver.find_element(By.ID, "confirm-redrive").click()
            wait_until(lambda: "Finished." in driver.page_source, timeout=30)
            assert driver.find_element(By.ID, "job-done").text == "1"
            shoot(driver, "console-redrive")

            def delivered_after_redrive() -> bool:
                driver.get(url + "/events/std/dead-1")
                return driver.find_element(By.ID, "event-state").text == "delivered" and (
                    "console:alice" in driver.find_element(By.ID, "history").text
                )

            wait_until(delivered_after_redrive)
            assert len(driver.find_elements(By.CSS_SELECTOR, "#attempts li")) == 2
            assert driver.find_element(By.ID, "attempt-count").text == "2"  # 400, then 200
            shoot(driver, "console-redriven")

            # Live counts per state on the list page: held-2 waits parked behind held-1.
            def counts_are(*expected: str) -> bool:
                driver.get(url + "/events")
                counts = driver.find_element(By.ID, "counts").text
                return all(c in counts for c in expected)

            wait_until(lambda: counts_are("delivered 4", "dead lettered 1", "parked 1"))
            shoot(driver, "console-events")

            # Destinations: the worker's report (state, breaker); pause, then resume.
            def sink_row(state: str) -> Any:
                driver.get(url + "/destinations")
                row = driver.find_element(By.CSS_SELECTOR, "tr[data-destination='sink']")
                return (
                    row if row.find_element(By.CSS_SELECTOR, ".dest-state").text == state else None
                )

            row = wait_until(lambda: sink_row("closed"), timeout=30)  # reported every 5 s
            assert row.find_element(By.CSS_SELECTOR, ".breaker").text == "closed"
            assert row.find_element(By.CSS_SELECTOR, ".in-flight").text == "0"
            row.find_element(By.CSS_SELECTOR, "button.pause").click()
            wait_until(lambda: "paused sink" in message_text(), timeout=20)
            row = driver.find_element(By.CSS_SELECTOR, "tr[data-destination='sink']")
            assert row.find_element(By.CSS_SELECTOR, ".dest-state").text == "paused"
            shoot(driver, "console-destinations")
            row.find_element(By.CSS_SELECTOR, "button.resume").click()
            wait_until(lambda: "resumed sink" in message_text(), timeout=20)
            wait_until(lambda: sink_row("closed"), timeout=30)

            # Lanes: the held lane, what blocks it; release it and its parked event follows.
            driver.get(url + "/lanes")
            lane = driver.find_element(By.CSS_SELECTOR, "tr[data-lane='std/cus_held']")
            assert "held-1" in lane.text
            assert lane.find_element(By.CSS_SELECTOR, ".lane-cause").text == "held"
            assert lane.find_element(By.CSS_SELECTOR, ".parked").text == "1"
            shoot(driver, "console-lanes")
            lane.find_element(By.CSS_SELECTOR, "button.release").click()
            wait_until(lambda: "released std/cus_held" in message_text(), timeout=20)
            wait_until(lambda: counts_are("delivered 5", "dead lettered 1", "parked 0"))

            def lane_clear() -> bool:
                driver.get(url + "/lanes")
                return not driver.find_elements(By.CSS_SELECTOR, "tr[data-lane='std/cus_held']")

            wait_until(lane_clear, timeout=30)
        finally:
            driver.quit()

    await asyncio.to_thread(operator_session)
    await sink.wait_for(5, timeout=30)
    assert sorted(sink.ids()) == sorted([*ids, "held-2"])

    # A cross-site page posts to the console from the browser of a signed-in operator:
    # the SameSite cookie stays home, and the POST carries no CSRF token anyway.
    evil = web.Application()

    async def attack(_request: web.Request) -> web.Response:
        form = (
            f'<form id="f" method="post" action="{url}/dlq/redrive">'
            '<input name="position" value="0/0"><input name="confirm" value="yes"></form>'
            "<script>document.getElementById('f').submit()</script>"
        )
        return web.Response(text=form, content_type="text/html")

    evil.router.add_get("/", attack)
    runner = web.AppRunner(evil)
    await runner.setup()
    evil_port = free_port()
    await web.TCPSite(runner, "localhost", evil_port).start()

    def cross_site() -> str:
        from selenium.webdriver.common.by import By

        driver = browser()
        try:
            driver.get(url + "/signin")
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys(USERS["alice"][1])
            driver.find_element(By.ID, "signin").click()
            assert driver.current_url.endswith("/events")
            driver.get(f"http://localhost:{evil_port}/")
            wait_until(lambda: "/dlq/redrive" in driver.current_url, timeout=15)
            return str(driver.find_element(By.TAG_NAME, "body").text)
        finally:
            driver.quit()

    try:
        refused = await asyncio.to_thread(cross_site)
    finally:
        await runner.cleanup()
    assert "sign in first" in refused or "cross-site request refused" in refused

    # The same forgery from a script holding the session cookie: refused by Origin and token.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as alice:
        csrf = await sign_in_http(alice, url, "alice", USERS["alice"][1])
        async with alice.post(url + "/dlq/redrive", data={"position": "0/0"}) as r:
            assert r.status == 403
            assert "CSRF" in await r.text()
        async with alice.post(
            url + "/dlq/redrive",
            data={"position": "0/0", "csrf": csrf},
            headers={"Origin": "http://evil.example"},
        ) as r:
            assert r.status == 403
            assert "cross-site" in await r.text()

    # A read-only user sees no redrive button and is refused when posting one anyway.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as bob:
        csrf = await sign_in_http(bob, url, "bob", USERS["bob"][1])
        async with bob.get(url + "/dlq") as r:
            page = await r.text()
            assert "may not redrive" in page
            assert "redrive-selected" not in page
        async with bob.post(url + "/dlq/redrive", data={"position": "0/0", "csrf": csrf}) as r:
            assert r.status == 403
            assert "may not redrive" in await r.text()
