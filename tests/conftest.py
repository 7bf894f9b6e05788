"""Shared fixtures: a loopback OpenAI-compatible server, a temp home, services and a launched app."""

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.openai_server import FakeOpenAI  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _offline_tiktoken(tmp_path_factory):
    # A fresh, empty cache: the encodings must come from the installed package, never a download.
    os.environ["TIKTOKEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("tiktoken-cache"))


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def fake_server():
    with FakeOpenAI() as server:
        yield server


def write_providers(home, server, **extra) -> None:
    home.mkdir(parents=True, exist_ok=True)
    endpoint = {"name": "local", "base_url": server.base_url, "api_key_env": "LOCAL_KEY",
                "models": ["gpt-4o-mini"], "completion_models": ["davinci-002"], **extra}
    (home / "providers.json").write_text(json.dumps({"providers": [endpoint]}), encoding="utf-8")


@pytest.fixture
def project_copy(tmp_path):
    """Copies of the shipped templates and personas, for tests that save: the real ones are never touched."""
    for folder in ("templates", "personas"):
        shutil.copytree(PROJECT_ROOT / folder, tmp_path / "project" / folder)
    return tmp_path / "project"


@pytest.fixture
def personas_dir():
    """The personas the `services` fixture loads; a module overrides it to work on a project_copy."""
    return PROJECT_ROOT / "personas"


@pytest.fixture
def services(_home, fake_server, personas_dir):
    from playground.services import build_services

    write_providers(_home, fake_server, timeout=2)
    built = build_services(home=_home, personas_dir=personas_dir, environ={"LOCAL_KEY": "sk-test"},
                           detect_local=False)
    built.registry.refresh()
    return built


@pytest.fixture
def app_url(services):
    from playground.ui.app import LAUNCH_DEFAULTS, build_app, launch

    demo = build_app(services)
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True,
                            **LAUNCH_DEFAULTS)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium, one per test module (Playwright's sync API allows one live instance at a time)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import launch

    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()
