"""Chromium for the browser tests: Debian's package, driven by Playwright (Playwright's own browser
download does not work here). A module calls `require_chromium()` before importing Playwright."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium() -> None:
    """Skip the calling module on a developer's machine without Chromium; fail under CI, where
    scripts/setup.sh should have installed it."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def launch(playwright: Any) -> Any:
    """A headless Chromium from a `sync_playwright()` context (playwright.sync_api.Browser)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
