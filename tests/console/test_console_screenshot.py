"""The board of `scgw simulate` in Chinese, as a duty officer sees it; with SCGW_SCREENSHOT
set (`make screenshot`), the picture is kept there for the README."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.console.browser import Browser

SCENARIOS = ["elder-sos", "door-forced"]
SHOWN = "access.forced_open elder.sos"  # the SOS cancelled by mistake is gone
LOGIN = re.compile(r"console\s+(http://127\.0\.0\.1:\d+)/\s+login (\S+), password (\S+) ")


def test_screenshot_of_the_board_from_the_demo(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway.ops.cli", "simulate", "--workdir", str(tmp_path / "demo"),
         "--duration", "60", *[a for s in SCENARIOS for a in ("--scenario", s)]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"})
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if LOGIN.search(line):
                found.set()

    reader = threading.Thread(target=read, name="demo-output", daemon=True)
    reader.start()
    browser: Browser | None = None
    try:
        browser = Browser("zh-CN")  # starts while the demo does
        assert found.wait(30), "".join(lines)
        match = next(m for line in lines if (m := LOGIN.search(line)))
        url, name, password = match.groups()
        browser.login(url, name, password)
        rules = ("return [...document.querySelectorAll('article.alert')]"
                 ".map((a) => a.dataset.rule).sort().join(' ');")
        browser.wait(lambda: browser.js(rules) == SHOWN, 30.0, f"the alerts {SHOWN} on the board")
        text = browser.text()
        assert "一键呼救" in text
        assert "紧急报警" in text
        picture = tmp_path / "console-zh.png"
        browser.driver.save_screenshot(str(picture))
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("SCGW_SCREENSHOT"):
            shutil.copyfile(picture, os.environ["SCGW_SCREENSHOT"])
    finally:
        if browser is not None:
            browser.quit()
        demo.send_signal(signal.SIGTERM)
        demo.wait(30)
        reader.join(5)
    assert demo.returncode == 0, "".join(lines)
    assert "Stopped everything the demo started." in "".join(lines)
