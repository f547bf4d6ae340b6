"""Debian's headless Chromium, driven through its chromedriver by selenium; nothing is
downloaded at run time. Every call blocks: tests run them with `asyncio.to_thread`."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000")


def need_chromium() -> None:
    if shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None:
        pytest.fail("chromium and chromium-driver are not installed: `make system-deps`")


class Browser:
    """One fresh Chromium profile, asking for pages in `language` (Accept-Language)."""

    def __init__(self, language: str) -> None:
        need_chromium()
        self._profile = tempfile.mkdtemp(prefix="scgw-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        options.add_argument(f"--lang={language}")
        options.add_experimental_option("prefs", {"intl.accept_languages": language})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(10)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def get(self, url: str) -> None:
        self.driver.get(url)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def text(self, css: str = "body") -> str:
        return str(self.find(css).text)

    def wait(self, predicate: Callable[[], Any], timeout: float = 5.0, what: str = "it",
             interval: float = 0.02) -> float:
        """Seconds until `predicate()` is true (bounded); looks every `interval` s."""
        start = time.monotonic()
        while True:
            try:
                if predicate():
                    return time.monotonic() - start
            except Exception:  # the page is still changing: look again
                pass
            if time.monotonic() - start > timeout:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                     f"page: {self.driver.current_url} "
                                     f"{self.text()[:500]!r}")
            time.sleep(interval)

    def state(self, name: str) -> Any:
        return self.js(f"return window.scgwConsole && window.scgwConsole.{name};")

    def login(self, base: str, name: str, password: str) -> None:
        self.get(base + "/")
        self.find("#name").send_keys(name)
        self.find("#password").send_keys(password)
        self.find("#login").click()
        self.wait(lambda: self.state("stream") == "open" and self.state("boards") >= 1,
                  what="the board's stream")
