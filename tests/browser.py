"""Headless Chromium driven over the DevTools protocol: open a page, type, read, screenshot.

Just what the UI tests need (the Airflow UI, `fruitops serve`'s page), on the
``websocket-client`` that Airflow's providers install; Chromium is Debian's package (``make
test`` installs it; ``CHROMIUM`` names another).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket


def chromium_binary() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    raise FileNotFoundError("no Chromium: `apt-get install chromium`, or set CHROMIUM=<binary>")


class Browser:
    """One Chromium process and one tab; `close()` (or ``with``) stops it."""

    def __init__(self, width: int = 1680, height: int = 960) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="fruitops-chromium-"))
        self.process = subprocess.Popen(
            [
                chromium_binary(),
                "--headless=new",
                "--no-sandbox",  # root in CI
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                # no calls home: this machine's network is closed, and a test needs none
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                f"--window-size={width},{height}",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = self._devtools_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            (page,) = [t for t in json.loads(r.read()) if t["type"] == "page"]
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self._next_id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _devtools_port(self) -> int:
        assert self.process.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if match := re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line):
                return int(match.group(1))
            if not line and self.process.poll() is not None:
                break
        raise RuntimeError("Chromium did not start its DevTools endpoint")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:  # events arrive in between; the answer carries our id
            message = json.loads(self.socket.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for_text(self, *texts: str, timeout: float = 60) -> str:
        """The page's visible text once it holds every one of ``texts``."""
        deadline = time.monotonic() + timeout
        body = ""
        while time.monotonic() < deadline:
            body = self.evaluate("document.body ? document.body.innerText : ''") or ""
            if all(text in body for text in texts):
                return body
            time.sleep(0.5)
        url = self.evaluate("location.href")
        raise AssertionError(f"{url} never showed {texts}; it shows:\n{body[:2000]}")

    def wait_for(self, expression: str, what: str, timeout: float = 60) -> None:
        """Until the JavaScript ``expression`` is true (e.g. the graph's nodes are drawn)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.evaluate('location.href')}: never {what}")
            time.sleep(0.5)

    def settle(self, timeout: float = 60) -> None:
        """Until no spinner is left (the page's data has arrived), then a moment to lay out."""
        self.wait_for(
            "document.querySelectorAll('.chakra-spinner, [aria-busy=true]').length === 0",
            "stopped loading",
            timeout,
        )
        time.sleep(1)

    def type_into(self, selector: str, text: str, timeout: float = 60) -> None:
        """Focus the element once the page has drawn it, and type, as a user would (React
        sees real input events)."""
        focus = (
            f"(e => {{ if (!e) return false; e.focus(); return true; }})"
            f"(document.querySelector({json.dumps(selector)}))"
        )
        self.wait_for(focus, f"showed {selector}", timeout)
        self.call("Input.insertText", text=text)

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                text="\r" if kind == "keyDown" else "",
            )

    def choose_files(self, selector: str, paths: list[Path]) -> None:
        """Choose files in the ``<input type=file>`` at ``selector``, as a person does in the
        file dialog (the page sees its change event)."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise AssertionError(f"no {selector} on {self.evaluate('location.href')}")
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(p) for p in paths])

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
