"""What the web server lets through: nothing of the app before login, the content policy, upload caps."""

import httpx
import pytest
from gradio_client import Client

from playground.sharing.demo import DemoSettings

PROFESSOR = "Professor Ignatia Brack"
RUDE = "Rude Support Agent"
MODEL = "local:gpt-4o-mini"
LOGINS = [("ana", "s3cret-pass"), ("bo", "other-pass")]
# Everything a stranger might ask for: pages, the config, the API descriptions, the run history, static files.
ROUTES = ["/", "/?view=api", "/config", "/config?page=", "/gradio_api/info", "/gradio_api/info?all_endpoints=True",
          "/gradio_api/openapi.json", "/openapi.json", "/gradio_api/runs", "/gradio_api/app_id", "/theme.css",
          "/manifest.json", "/gradio_api/user", "/gradio_api/token", "/monitoring", "/docs", "/gradio_api/upload"]


def launch(services, demo: DemoSettings | None = None, auth=LOGINS, **options):
    from playground.ui.app import build_app, launch_options
    from playground.ui.app import launch as launch_app

    app = build_app(services, demo=demo)
    _, url, _ = launch_app(app, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, auth=auth,
                           **launch_options(services, demo=demo is not None, **options))
    return app, url


@pytest.fixture
def full_app(services):
    app, url = launch(services)
    yield url
    app.close()


def secrets_of(services) -> list[str]:
    """What must not reach a stranger: persona names, model names (a fine-tune's too), system prompt text."""
    prompts = [p.system_prompt[:40] for p in services.personas.values() if len(p.system_prompt) > 20]
    return [*services.personas, "gpt-4o-mini", "ft:gpt-4o-mini", *prompts]


def leaks(text: str, services) -> list[str]:
    return [secret for secret in secrets_of(services) if secret in text]


@pytest.mark.parametrize("accept", ["*/*", "text/html,application/xhtml+xml"])
def test_a_stranger_gets_only_the_login_page(full_app, services, accept):
    for route in ROUTES:
        for method in ("GET", "POST"):
            answer = httpx.request(method, full_app.rstrip("/") + route, headers={"accept": accept}, timeout=10)
            assert answer.status_code == 401, (method, route)
            assert leaks(answer.text, services) == [], (method, route)
    page = httpx.get(full_app, headers={"accept": accept}, timeout=10)
    assert 'type="password"' in page.text and "gradio_config" not in page.text


def test_after_login_the_app_is_all_there(full_app, services):
    client = Client(full_app, auth=LOGINS[0], verbose=False)  # Gradio's own login, through the wall

    page = httpx.get(full_app, cookies=client.cookies, timeout=10)
    assert page.status_code == 200 and "gradio_config" in page.text
    assert PROFESSOR in page.text  # the control: the check above would see a leak
    assert "/send" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    with pytest.raises(ValueError, match="Could not login"):
        Client(full_app, auth=("ana", "wrong"), verbose=False)


def test_pages_forbid_remote_pictures_media_and_frames_unless_allowed(services):
    app, url = launch(services, auth=None)
    try:
        policy = httpx.get(url, timeout=10).headers["content-security-policy"]
        assert "img-src 'self' data: blob:" in policy and "media-src 'self' data: blob:" in policy
        assert "frame-src 'self'" in policy
    finally:
        app.close()
    app, url = launch(services, auth=None, remote_media=True)
    try:
        assert "content-security-policy" not in httpx.get(url, timeout=10).headers
    finally:
        app.close()


def upload(url: str, size: int, cookies=None) -> httpx.Response:
    return httpx.post(f"{url}gradio_api/upload", files={"files": ("cards.json", b"x" * size)}, cookies=cookies,
                      timeout=30)


def test_uploads_are_capped(services):
    app, url = launch(services, auth=None, max_upload_mb=1)
    try:
        assert upload(url, 10_000).status_code == 200
        too_big = upload(url, 2 * 1024 * 1024)
        assert too_big.status_code == 413, too_big.text
    finally:
        app.close()


# --- demo mode behind a login -------------------------------------------------------------------------


@pytest.fixture
def demo_app(services):
    settings = DemoSettings(personas=[PROFESSOR, RUDE], models=[MODEL], max_tokens=5, per_session_per_minute=2)
    app, url = launch(services, demo=settings)
    yield url
    app.close()


def test_a_stranger_learns_nothing_of_the_demo(demo_app, services):
    for route in ROUTES:
        answer = httpx.get(demo_app.rstrip("/") + route, timeout=10)
        assert answer.status_code == 401 and leaks(answer.text, services) == [], route


def test_the_demo_api_lists_only_the_chat_even_after_login(demo_app):
    client = Client(demo_app, auth=LOGINS[0], verbose=False)

    api = client.view_api(return_format="dict", print_info=False)

    assert set(api["named_endpoints"]) == {"/send", "/new_chat"} and not api["unnamed_endpoints"]
    info = httpx.get(f"{demo_app}gradio_api/info?all_endpoints=True", cookies=client.cookies, timeout=10).json()
    assert set(info["named_endpoints"]) == {"/send", "/new_chat"} and not info["unnamed_endpoints"]


def test_the_demo_takes_no_files_even_after_login(demo_app):
    client = Client(demo_app, auth=LOGINS[0], verbose=False)

    refused = upload(demo_app, 100, cookies=client.cookies)

    assert refused.status_code == 403 and refused.json() == {"detail": "This demo takes no files."}


def test_each_login_has_its_own_allowance_whatever_the_session(demo_app, services):
    ana = [Client(demo_app, auth=LOGINS[0], verbose=False) for _ in range(4)]  # a fresh session per message
    notices = [client.predict(f"m{n}", RUDE, MODEL, api_name="/send")[2] for n, client in enumerate(ana)]
    assert notices[:2] == ["", ""] and all("Demo limit reached" in n for n in notices[2:])

    bo = Client(demo_app, auth=LOGINS[1], verbose=False)
    assert bo.predict("hello", RUDE, MODEL, api_name="/send")[2] == ""
    assert len(services.store.exchanges()) == 3
