"""`python -m playground finetune start/status/list/cancel` against the loopback fine-tuning server."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from playground.cli import main
from playground.core.store import Store
from tests.conftest import write_providers
from tests.finetune_fixtures import add_dataset, town_examples
from tests.openai_jobs_server import FakeFineTuning

ROOT = Path(__file__).resolve().parent.parent
JOB_ID = re.compile(r"^ftjob-\S+$")


@pytest.fixture
def server():
    with FakeFineTuning(steps=3) as fake:
        yield fake


@pytest.fixture
def home(_home, server, monkeypatch):
    monkeypatch.setenv("LOCAL_KEY", "sk-test")
    write_providers(_home, server, timeout=5)
    add_dataset(Store(_home / "playground.db"), "town", town_examples(15))
    return _home


def finetune(home, *argv: str) -> int:
    return main(["finetune", *argv, "--home", str(home)])


def start(home, capsys, *extra: str) -> str:
    assert finetune(home, "start", "town", "--model", "local:gpt-4o-mini", *extra) == 0
    out = capsys.readouterr().out.strip()
    assert JOB_ID.match(out), out
    return out


def test_start_prints_the_job_id_and_status_follows_it_to_the_model(home, server, capsys):
    assert finetune(home, "start", "town", "--model", "local:gpt-4o-mini", "--split", "80/20", "--seed", "3",
                    "--epochs", "2", "--suffix", "town") == 0
    captured = capsys.readouterr()
    job_id = captured.out.strip()
    assert JOB_ID.match(job_id) and job_id in server.jobs
    assert "train 12, validation 3" in captured.err and "2 epochs" in captured.err and "$" in captured.err
    body = server.jobs[job_id]
    assert (body["model"], body["seed"], body["_suffix"]) == ("gpt-4o-mini", 3, "town")

    seen = []
    for _ in range(10):
        assert finetune(home, "status", job_id) == 0
        out = capsys.readouterr().out
        seen.append(out.splitlines()[0])
        if "succeeded" in out:
            break
    assert seen[:3] == [f"{job_id}: queued", f"{job_id}: running", f"{job_id}: running"]
    lines = out.splitlines()
    assert lines[0] == f"{job_id}: succeeded"
    assert re.fullmatch(r"fine-tuned model: ft:gpt-4o-mini:acme:town:\w+", lines[1])
    assert lines[2].startswith("step 3, train loss ") and "validation loss" in lines[2]

    assert finetune(home, "list") == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{job_id}  succeeded") and "town" in line and "ft:gpt-4o-mini:acme:town:" in line


def test_list_refreshes_unfinished_jobs_and_says_when_there_are_none(home, server, capsys):
    assert finetune(home, "list") == 0
    assert "No fine-tuning jobs yet" in capsys.readouterr().err

    job_id = start(home, capsys)
    assert finetune(home, "list") == 0
    assert capsys.readouterr().out.startswith(f"{job_id}  queued")


def test_cancel(home, server, capsys):
    job_id = start(home, capsys)

    assert finetune(home, "cancel", job_id) == 0
    assert capsys.readouterr().out.strip() == f"{job_id}: cancelled"
    assert finetune(home, "cancel", job_id) == 1
    assert "already cancelled" in capsys.readouterr().err


def test_validation_errors_refuse_to_start(home, server, capsys):
    add_dataset(Store(home / "playground.db"), "empty-answers", town_examples(15, answer=""))

    assert finetune(home, "start", "empty-answers", "--model", "local:gpt-4o-mini") == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "missing_content" in captured.err and "error: not started" in captured.err
    assert server.files == {} and server.jobs == {}


def test_no_fine_tuning_access_points_to_the_exports(home, server, capsys):
    server.finetuning_access = False

    assert finetune(home, "start", "town", "--model", "local:gpt-4o-mini") == 1

    err = capsys.readouterr().err
    assert "no fine-tuning access" in err and "python -m playground dataset export town" in err
    assert "--format trl-messages" in err


@pytest.mark.parametrize("argv, message", [
    (["status", "ftjob-nope"], "There is no fine-tuning job 'ftjob-nope'"),
    (["start", "town", "--model", "local:gpt-4o-mini", "--epochs", "0"], "Epochs: Input should be greater than or equal to 1"),
    (["start", "town", "--model", "local:gpt-4o-mini", "--split", "80"], "a split has 2 or 3 parts"),
    (["start", "nosuch", "--model", "local:gpt-4o-mini"], "There is no dataset named 'nosuch'"),
    (["start", "town", "--model", "offline:lookup"], "cannot be fine-tuned"),
])
def test_mistakes_are_one_line_errors(home, capsys, argv, message):
    assert finetune(home, *argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_the_real_command_line(home, server):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PLAYGROUND_HOME": str(home), "LOCAL_KEY": "sk-test"}

    def command(*argv):
        return subprocess.run([sys.executable, "-m", "playground", "finetune", *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    started = command("start", "town", "--model", "local:gpt-4o-mini", "--epochs", "1")
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()
    assert JOB_ID.match(job_id)
    status = command("status", job_id)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == f"{job_id}: queued"
    helped = subprocess.run([sys.executable, "-m", "playground", "finetune", "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert all(c in helped.stdout for c in ("start", "status", "list", "cancel"))
