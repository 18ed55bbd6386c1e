"""A real browser for the tests: Debian's ``chromium`` package, headless, driven by Playwright's Python package
(pointed at that executable: no browser is ever downloaded). ``make test`` installs chromium as root when it is
missing; elsewhere :func:`chromium_page` skips its test with the reason."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# known to work headless in a container with no network: no sandbox, no GPU, nothing that phones home
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextlib.contextmanager
def chromium_page(profile: Path, *, width: int = 1100, height: int = 900) -> Iterator[Any]:
    """A Playwright page in headless chromium with a fresh profile in ``profile``; skips when either the
    browser or the playwright package is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: `apt-get install chromium` (make test installs it when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": width, "height": height},
        )
        try:
            yield context.new_page()
        finally:
            context.close()
