import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from playground.core.store import Exchange, Store
from tests.conftest import write_providers

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-cli-test-7f3a9c51e2"


def run(*args: str, home: Path, script: str | None = None, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update(PLAYGROUND_HOME=str(home), PYTHONPATH=str(ROOT), **env_extra)
    command = [sys.executable, script, *args] if script else [sys.executable, "-m", "playground", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def fill_log(home: Path) -> Store:
    store = Store(home / "playground.db")
    for user, reply, error in [("My kettle clicks off", "Descale it.", None),
                               ("Light the lamp", "You light the lamp.\nIt flickers.", None),
                               ("Where is the keeper?", "", "Cannot connect to local.")]:
        store.log_exchange(Exchange(
            conversation_id="c1", model="gpt-4o-mini", provider="local", persona="Rude Support Agent",
            request={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": user}]},
            reply=reply, error=error, prompt_tokens=12, completion_tokens=3, cost_usd=0.0000036))
    return store


# ---------------------------------------------------------------- help


@pytest.mark.parametrize("args, expected", [
    ([], ["serve", "models", "logs"]),
    (["serve"], ["--host", "--port", "--home", "--providers", "--no-detect"]),
    (["models"], ["--json", "--no-detect", "--providers"]),
    (["logs"], ["--search", "--json", "--count"]),
])
def test_help(tmp_path, args, expected):
    done = run(*args, "--help", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m playground")
    for option in expected:
        assert option in done.stdout


def test_app_help_shows_host_and_port(tmp_path):
    done = run("--help", home=tmp_path, script="app.py")
    assert done.returncode == 0, done.stderr
    assert "--host" in done.stdout and "--port" in done.stdout and "7860" in done.stdout


def test_an_unknown_command_is_a_usage_error(tmp_path):
    done = run("chat", home=tmp_path)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


# ---------------------------------------------------------------- models


def test_models_lists_one_provider_model_per_line(tmp_path, fake_server):
    write_providers(tmp_path, fake_server, timeout=5)
    done = run("models", "--no-detect", home=tmp_path, LOCAL_KEY="sk-test")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "local:davinci-002", "local:echo", "local:ft:gpt-4o-mini-2024-07-18:acme::abc123",
        "local:gpt-4o", "local:gpt-4o-mini", "offline:lookup"]
    assert "warning" not in done.stderr


def test_models_json(tmp_path, fake_server):
    write_providers(tmp_path, fake_server, timeout=5)
    done = run("models", "--no-detect", "--json", home=tmp_path, LOCAL_KEY="sk-test")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["offline"] == ["lookup"]
    assert "gpt-4o-mini" in listed["local"] and "echo" in listed["local"]


def test_models_warns_about_a_broken_providers_file_and_still_runs(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "providers.json").write_text('{"providers": [{"name": "local", "base_url": 5}]}')
    done = run("models", "--no-detect", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["offline:lookup"]
    assert "warning:" in done.stderr
    assert str(tmp_path / "providers.json") in done.stderr and "providers.0.base_url" in done.stderr
    assert "Traceback" not in done.stderr


def test_models_warns_about_an_unreachable_provider(tmp_path, fake_server):
    write_providers(tmp_path, fake_server, timeout=5)
    fake_server.close()
    done = run("models", "--no-detect", home=tmp_path, LOCAL_KEY="sk-test")
    assert done.returncode == 0, done.stderr
    assert "offline:lookup" in done.stdout.splitlines()
    assert "warning: local: Cannot connect" in done.stderr


# ---------------------------------------------------------------- logs


def test_logs_with_no_database_says_so(tmp_path):
    done = run("logs", home=tmp_path / "empty")
    assert done.returncode == 0
    assert done.stdout == ""
    assert "No log yet" in done.stderr and str(tmp_path / "empty" / "playground.db") in done.stderr
    assert not (tmp_path / "empty" / "playground.db").exists()


def test_logs_json_prints_every_field_most_recent_first(tmp_path):
    store = fill_log(tmp_path)
    done = run("logs", "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows == store.exchanges()
    assert [r["request"]["messages"][0]["content"] for r in rows] == [
        "Where is the keeper?", "Light the lamp", "My kettle clicks off"]
    assert set(rows[0]) >= {"id", "conversation_id", "turn", "persona", "provider", "model", "mode", "request",
                            "request_text", "reply", "finish_reason", "prompt_tokens", "completion_tokens",
                            "tokens_counted", "cost_usd", "ttft_ms", "duration_ms", "error", "incomplete",
                            "rating", "created_at"}


@pytest.mark.parametrize("query, replies", [
    ("kettle", ["Descale it."]),
    ("flickers", ["You light the lamp.\nIt flickers."]),
    ('"AND(*', []),
])
def test_logs_search(tmp_path, query, replies):
    fill_log(tmp_path)
    done = run("logs", "--json", "--search", query, home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["reply"] for line in done.stdout.splitlines()] == replies


def test_logs_as_text(tmp_path):
    fill_log(tmp_path)
    done = run("logs", "-n", "2", home=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert "ERROR Cannot connect to local." in lines[0] and "gpt-4o-mini" in lines[0] and "12+3" in lines[0]
    assert "You light the lamp. It flickers." in lines[1]


def test_the_api_key_never_reaches_the_log(tmp_path, fake_server):
    from playground.chat.ask import ChatSettings, stream_reply
    from playground.chat.conversation import Conversation
    from playground.services import build_services

    fake_server.api_key = SECRET
    write_providers(tmp_path, fake_server, timeout=5)
    services = build_services(home=tmp_path, environ={"LOCAL_KEY": SECRET}, detect_local=False)
    persona = services.personas["Rude Support Agent"]
    conversation = Conversation.start(persona.greeting)
    conversation.add_user("My kettle clicks off")
    for _ in stream_reply(services, persona, ChatSettings.for_persona(persona, "local:gpt-4o-mini"), conversation):
        pass
    assert conversation.turns[-1].content == "Echo: My kettle clicks off"
    assert fake_server.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"

    done = run("logs", "--json", home=tmp_path, LOCAL_KEY=SECRET)
    assert done.returncode == 0, done.stderr
    [row] = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["reply"] == "Echo: My kettle clicks off" and row["provider"] == "local"
    assert SECRET not in done.stdout and SECRET not in done.stderr
    for database_file in tmp_path.glob("playground.db*"):  # the WAL file too
        assert SECRET.encode() not in database_file.read_bytes()
