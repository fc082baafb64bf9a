"""Headless Chromium driven over the Chrome DevTools protocol (Debian's ``chromium``; no driver, no
downloads): open a page, evaluate JavaScript in it, take screenshots. Used by the web view's test
and benchmark.

    async with Chromium() as browser:
        await browser.navigate("http://127.0.0.1:8080/")
        n = await browser.evaluate("window.c3t.messages")
        await browser.screenshot(path)
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The Chromium binary; a clear failure when none is installed (CI installs Debian's ``chromium``)."""
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("no Chromium found: install Debian's 'chromium' package (apt-get install chromium)")


class Chromium:
    """One headless Chromium process with one page, spoken to over its DevTools WebSocket."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.width, self.height = width, height
        self.proc: subprocess.Popen | None = None
        self._profile = None
        self._session = None
        self._ws = None
        self._next_id = 0

    async def __aenter__(self) -> Chromium:
        import aiohttp

        # Chromium's helper processes may still be writing the profile for a moment after the
        # browser exits; they are killed with it (own process group), and a file they leave behind
        # does not fail the test.
        self._profile = tempfile.TemporaryDirectory(prefix="c3t-chromium-", ignore_cleanup_errors=True)
        profile = Path(self._profile.name)
        self.proc = subprocess.Popen(
            [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port = await self._devtools_port(profile / "DevToolsActivePort")
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        return self

    async def _devtools_port(self, active_port: Path, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.proc.returncode} before it listened")
            if active_port.exists() and (text := active_port.read_text().split("\n")[0].strip()):
                return int(text)
            await asyncio.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port within 30 s")

    async def __aexit__(self, *exc) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self.proc is not None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self._signal_group(signal.SIGKILL)  # the renderer and crashpad helpers too
            self.proc.wait()
        if self._profile is not None:
            self._profile.cleanup()

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    async def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result (events in between are skipped)."""
        self._next_id += 1
        mid = self._next_id
        await self._ws.send_str(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            message = json.loads((await self._ws.receive()).data)
            if message.get("id") == mid:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def navigate(self, url: str) -> None:
        await self.call("Page.enable")
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str):
        """The JSON value of ``expression`` in the page (None while it throws, e.g. before a script ran)."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            return None
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 30.0, interval_s: float = 0.1):
        """Evaluate ``expression`` until it is truthy; its value (AssertionError after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(interval_s)
        raise AssertionError(f"the page never made {expression!r} true within {timeout_s:g} s")

    async def screenshot(self, path: str | os.PathLike) -> Path:
        """Save a PNG of the whole page."""
        metrics = await self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                               clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        path = Path(path)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
