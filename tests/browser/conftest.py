"""The browser tier: Airflow running the bundle after a demo lifecycle, and a headless Chromium.

``airflow_ui`` (session) starts Airflow the way a user does (tests/browser/stack.py) and populates
it through the REST API (tests/browser/lifecycle.py); ``browser`` (session) is Debian's Chromium
under Playwright; ``person(user)`` signs a user in through Airflow's login page. Screenshots of
every page visited go to a tmp folder, or to ``RAGOPS_SCREENSHOTS_DIR`` (docs/screenshots for the
README). Without Chromium the tier fails, naming the fix: scripts/setup.sh installs it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.lifecycle import Lifecycle, populate
from tests.browser.stack import REPO, Airflow, running_airflow
from tests.browser.ui import SCREENSHOTS_ENV, Person, Screenshots, chromium_binary, sign_in


@dataclass(frozen=True)
class AirflowUI:
    airflow: Airflow
    lifecycle: Lifecycle


@pytest.fixture(scope="session")
def airflow_ui(tmp_path_factory, pg_dsn) -> Iterator[AirflowUI]:
    started = time.monotonic()
    root = tmp_path_factory.mktemp("browser-airflow")
    with running_airflow(root, pg_dsn) as airflow:
        up = time.monotonic()
        lifecycle = populate(airflow)
        sys.stderr.write(f"\n[browser] Airflow up in {up - started:.0f}s, lifecycle populated in "
                         f"{time.monotonic() - up:.0f}s ({airflow.base_url}, logs in {root / 'logs'})\n")
        yield AirflowUI(airflow, lifecycle)


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Screenshots:
    """Every page in a tmp folder; with RAGOPS_SCREENSHOTS_DIR (docs/screenshots), the README's there too."""
    docs = os.environ.get(SCREENSHOTS_ENV)
    docs_folder = (REPO / docs if not Path(docs).is_absolute() else Path(docs)) if docs else None
    if docs_folder is not None:
        docs_folder.mkdir(parents=True, exist_ok=True)
    folder = tmp_path_factory.mktemp("screenshots")
    sys.stderr.write(f"\n[browser] screenshots of every page visited: {folder}\n")
    return Screenshots(folder, docs_folder)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    binary = chromium_binary(dict(os.environ))
    if binary is None:
        pytest.fail("the browser tier needs Chromium and found none: scripts/setup.sh installs Debian's "
                    "`chromium` (or set RAGOPS_CHROMIUM to a Chromium binary)", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=binary, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def person(browser, screenshots, airflow_ui) -> Iterator[Callable[[str], Person]]:
    """``person("admin")``: a fresh browser context signed in as that user; closed afterwards.
    (The browser comes first: without Chromium the tier fails before starting Airflow.)"""
    opened: list[Person] = []

    def signed_in(username: str) -> Person:
        airflow = airflow_ui.airflow
        someone = sign_in(browser, airflow.base_url, username, airflow.passwords[username], screenshots)
        opened.append(someone)
        return someone

    yield signed_in
    for someone in opened:
        someone.page.context.close()
