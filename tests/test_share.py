"""Share links and logins: `--share` needs a login, the login is enforced, offline sharing fails fast and clearly."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AuthenticationError

from playground.sharing.serving import LaunchRefused, check_share, logins, parse_login
from tests.conftest import write_providers

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PLAYGROUND_AUTH")}
    return {**env, "PYTHONPATH": str(ROOT), "PLAYGROUND_HOME": str(home), "GRADIO_ANALYTICS_ENABLED": "False", **extra}


class Running:
    """A subprocess whose stdout and stderr are collected as they come."""

    def __init__(self, argv: list[str], env: dict):
        self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=lambda s=stream, ls=lines: ls.extend(iter(s.readline, "")), daemon=True).start()

    def wait_for(self, text: str, where: str = "out", timeout: float = 30.0) -> str:
        lines = self.out if where == "out" else self.err
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(lines):
                if text in line:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in std{where} within {timeout} s:\n{''.join(self.out)}\n{''.join(self.err)}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def test_share_without_a_login_refuses_to_start_and_says_why(tmp_path):
    done = subprocess.run([sys.executable, "app.py", "--share", "--no-detect", "--port", str(free_port())], cwd=ROOT,
                          env=app_env(tmp_path / "home"), capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert "--share needs a login" in done.stderr
    assert "--auth user:password" in done.stderr and "PLAYGROUND_AUTH" in done.stderr and "--auth-file" in done.stderr
    assert "running at" not in done.stdout


def test_offline_share_fails_fast_and_the_local_app_keeps_working_behind_its_login(tmp_path, fake_server):
    home = tmp_path / "home"
    write_providers(home, fake_server)
    port = free_port()
    # A share server that cannot be reached, as with no internet: same path, whatever network the tests run on.
    unreachable = f"127.0.0.1:{free_port()}"
    app = Running([sys.executable, "app.py", "--share", "--no-detect", "--port", str(port)],
                  app_env(home, PLAYGROUND_AUTH="ana:s3cret-pass,bo:other", GRADIO_SHARE_SERVER_ADDRESS=unreachable,
                          LOCAL_KEY="sk-test"))
    try:
        started = time.monotonic()
        running = app.wait_for("running at", timeout=60)
        message = app.wait_for("No share link", where="err", timeout=15)
        assert time.monotonic() - started < 15
        url = f"http://127.0.0.1:{port}/"
        assert url in running and "(login required)" in running
        assert "cannot be reached" in message and f"still works locally at {url}" in message

        with pytest.raises(AuthenticationError):
            Client(url, verbose=False)
        with pytest.raises(ValueError, match="Could not login"):  # Gradio answers 400 to a wrong password
            Client(url, auth=("ana", "wrong"), verbose=False)
        client = Client(url, auth=("ana", "s3cret-pass"), verbose=False)
        chat, notice = client.predict("Location Extractor", api_name="/new_chat")
        assert chat == [] and notice == ""
        assert Client(url, auth=("bo", "other"), verbose=False)
    finally:
        app.stop()


def test_files_are_served_from_the_export_folder_only(services):
    from playground.ui.app import build_app, launch, launch_options

    (services.home / "exports").mkdir(parents=True, exist_ok=True)
    (services.home / "exports" / "town.jsonl").write_text('{"messages": []}\n')
    services.store.exchanges()  # the database exists
    app = build_app(services)
    _, url, _ = launch(app, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(services))
    try:
        config = httpx.get(f"{url}config", timeout=10).json()
        assert config["run_history"] is False
        exported = httpx.get(f"{url}gradio_api/file={services.home / 'exports' / 'town.jsonl'}", timeout=10)
        assert exported.status_code == 200 and exported.text == '{"messages": []}\n'
        for private in ("playground.db", "providers.json"):
            assert httpx.get(f"{url}gradio_api/file={services.home / private}", timeout=10).status_code == 403
        assert "sk-test" not in str(config)
    finally:
        app.close()


# --- logins --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, login", [
    ("ana:pw", ("ana", "pw")),
    (" ana : pw:with:colons", ("ana", " pw:with:colons")),
])
def test_a_login_is_user_colon_password(text, login):
    assert parse_login(text, "--auth") == login


@pytest.mark.parametrize("text", ["ana", "ana:", ":pw", ""])
def test_a_malformed_login_is_refused_without_echoing_the_password(text):
    with pytest.raises(LaunchRefused) as refused:
        parse_login(text, "$PLAYGROUND_AUTH")
    assert "$PLAYGROUND_AUTH: a login is user:password" in str(refused.value)


def test_logins_come_from_flags_a_file_and_the_environment(tmp_path):
    path = tmp_path / "logins.txt"
    path.write_text("# the team\ncy:pw3\n\n  dee:pw4\n")

    found = logins(["ana:pw1"], path, {"PLAYGROUND_AUTH": "bo:pw2, eve:pw5"})

    assert found == [("ana", "pw1"), ("cy", "pw3"), ("dee", "pw4"), ("bo", "pw2"), ("eve", "pw5")]


def test_a_bad_line_in_the_login_file_is_named(tmp_path):
    path = tmp_path / "logins.txt"
    path.write_text("cy:pw3\nnopassword\n")
    with pytest.raises(LaunchRefused, match=r"logins.txt, line 2"):
        logins([], path, {})
    with pytest.raises(LaunchRefused, match="cannot read it"):
        logins([], tmp_path / "missing.txt", {})


def test_sharing_needs_a_login_and_serving_locally_does_not():
    with pytest.raises(LaunchRefused):
        check_share(True, [])
    check_share(True, [("ana", "pw")])
    check_share(False, [])


def test_a_demo_guest_cannot_name_their_own_address(tmp_path, fake_server):
    # Uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise; without --trusted-proxy the app tells it.
    home = tmp_path / "home"
    write_providers(home, fake_server)
    port = free_port()
    app = Running([sys.executable, "app.py", "--no-detect", "--port", str(port), "--demo", "Rude Support Agent",
                   "--demo-models", "local:gpt-4o-mini", "--demo-rate", "2", "--auth", "ana:s3cret-pass"],
                  app_env(home, LOCAL_KEY="sk-test"))
    try:
        app.wait_for("running at", timeout=60)
        url = f"http://127.0.0.1:{port}/"
        assert httpx.get(url, timeout=10).status_code == 401  # the login wall through the real launch
        notices = [Client(url, auth=("ana", "s3cret-pass"), headers={"X-Forwarded-For": f"203.0.113.{n}"},
                          verbose=False).predict(f"m{n}", "Rude Support Agent", "local:gpt-4o-mini",
                                                 api_name="/send")[2] for n in range(4)]
        assert notices[:2] == ["", ""] and all("Demo limit reached" in n for n in notices[2:])
    finally:
        app.stop()
