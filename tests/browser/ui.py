"""A person at a browser: sign in through Airflow's login page, find the control plane in
Airflow's navigation, follow links, and keep a screenshot of every page seen.

Playwright drives Debian's Chromium (``executable_path``): the Python package ships its own
driver, and no browser download is needed or possible here.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Frame, Locator, Page, expect

from ragops.vocabulary import CONTROL_PLANE_PREFIX

CHROMIUM_ENV = "RAGOPS_CHROMIUM"          # another Chromium binary than Debian's
SCREENSHOTS_ENV = "RAGOPS_SCREENSHOTS_DIR"  # e.g. docs/screenshots: keep the screenshots there
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
CONTROL_PLANE_ENTRY = "RAG control plane"   # the control plane's external_views name in Airflow's navigation
CONTROL_PLANE_PATH = f"{CONTROL_PLANE_PREFIX}/"
NAV_MENUS = ("Browse", "Admin", "Plugins")  # where Airflow may file a plugin's navigation entry
# the pages the README shows (docs/screenshots/), as the admin sees them after the lifecycle
DOCS_PAGES = frozenset({"admin-overview", "admin-collection-browserdocs", "admin-models", "admin-datasets",
                        "admin-lineage", "admin-runs", "admin-evaluations", "viewer-rollback-refused"})
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 30_000                          # one page or element, on a loaded 2-core machine
MENU_TIMEOUT_MS = 10_000                     # a navigation menu's items, once it is open


expect.set_options(timeout=TIMEOUT_MS)


def airflow_nav(page: Page) -> Locator:
    """Airflow's navigation bar, known by its "Dags" link."""
    return page.get_by_role("link", name="Dags", exact=True).first


def chromium_binary(env: dict[str, str]) -> str | None:
    if env.get(CHROMIUM_ENV):
        return env[CHROMIUM_ENV]
    return next((path for name in CHROMIUM_CANDIDATES if (path := shutil.which(name))), None)


@dataclass
class Screenshots:
    """Every page visited, as a PNG named after who saw what (``admin-models.png``), in ``folder``;
    the README's pages (``DOCS_PAGES``) also in ``docs_folder`` when one is given."""

    folder: Path
    docs_folder: Path | None = None
    taken: list[Path] = field(default_factory=list)

    def take(self, page: Page, name: str) -> Path:
        stem = re.sub(r"[^a-z0-9_-]+", "-", name.lower())
        path = self.folder / f"{stem}.png"
        page.screenshot(path=str(path), full_page=False)
        self.taken.append(path)
        if self.docs_folder is not None and stem in DOCS_PAGES:
            shutil.copyfile(path, self.docs_folder / path.name)
        return path


@dataclass
class Person:
    """One signed-in user's browser session."""

    page: Page
    base_url: str
    screenshots: Screenshots
    username: str

    def shoot(self, name: str) -> Path:
        """A screenshot once the page and its frames have loaded (not "network idle": Airflow's UI
        polls while runs are going, so the network may never rest)."""
        for frame in self.page.frames:
            if not frame.is_detached():
                frame.wait_for_load_state("load")
        return self.screenshots.take(self.page, f"{self.username}-{name}")

    def open_control_plane(self) -> Frame:
        """From Airflow's home page to the control plane through the navigation, as a person
        finds it: a top-level entry, or an item of one of the navigation's menus. Returns the
        frame that shows it (Airflow embeds a plugin's view in an iframe when it has a route)."""
        page = self.page
        page.goto(f"{self.base_url}/")
        entry = page.get_by_role("link", name=CONTROL_PLANE_ENTRY)
        menus = [page.get_by_role("button", name=menu, exact=True) for menu in NAV_MENUS]
        # the navigation renders its menus once the user's permissions are loaded
        expect(entry.or_(menus[0]).first).to_be_visible()
        if not entry.count():
            for button in menus:
                if not button.count():
                    continue
                button.first.click()
                entry = page.get_by_role("menuitem", name=CONTROL_PLANE_ENTRY)
                try:
                    expect(entry.first).to_be_visible(timeout=MENU_TIMEOUT_MS)
                    break
                except AssertionError:   # not in this menu
                    page.keyboard.press("Escape")
        assert entry.count(), f"no {CONTROL_PLANE_ENTRY!r} entry in Airflow's navigation ({page.url})"
        entry.first.click()
        return self.control_plane_frame()

    def control_plane_frame(self) -> Frame:
        """The control plane's frame: the page itself, or the iframe Airflow shows a plugin view in."""
        page = self.page
        if CONTROL_PLANE_PATH in page.url:
            return page.main_frame
        frame = page.wait_for_selector("iframe").content_frame()
        assert frame is not None, f"no control plane on {page.url}"
        frame.wait_for_url(re.compile(re.escape(CONTROL_PLANE_PATH)))
        frame.wait_for_load_state()
        return frame


def sign_in(browser: Browser, base_url: str, username: str, password: str, screenshots: Screenshots) -> Person:
    """Airflow's own login page: the home page redirects there, the form signs in and goes back."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{base_url}/")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    expect(page.get_by_text("Sign into Airflow")).to_be_visible()
    person = Person(page, base_url, screenshots, username)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/auth/login"))
    expect(airflow_nav(page)).to_be_visible()
    person.shoot("airflow-home")
    return person
