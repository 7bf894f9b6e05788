"""`python -m playground eval` against the loopback server: the --json contract, exit codes 0/1/2, resume."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from playground.cli import main
from tests.conftest import write_providers

ROOT = Path(__file__).resolve().parent.parent
JUDGES = ["judge-always-a", "judge-silent", "judge-pick-Echo"]  # and "terse", which always answers "OK."


@pytest.fixture
def home(_home, fake_server, monkeypatch):
    monkeypatch.setenv("LOCAL_KEY", "sk-test")
    write_providers(_home, fake_server, timeout=5, models=["gpt-4o-mini", "terse", "fault-401", *JUDGES])
    return _home


def prompt_set(tmp_path, n=4, name="prompts.jsonl") -> Path:
    # gpt-4o-mini echoes, so every check passes for it; terse answers "OK." and fails them all.
    lines = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"q{i}"}], "expected": f"Echo: q{i}"}
             for i in range(n)]
    lines.append({"id": "c", "prompt": "Say hi", "expected": "hi", "check": {"kind": "contains"}})
    path = tmp_path / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def eval_(home, capsys, *argv):
    code = main(["eval", *map(str, argv), "--home", str(home)])
    out, err = capsys.readouterr()
    return code, out, err


def columns(*extra):
    return ["--column", "echo=local:gpt-4o-mini", "--column", "terse=local:terse", *extra]


def test_the_json_contract(home, fake_server, tmp_path, capsys):
    code, out, err = eval_(home, capsys, prompt_set(tmp_path), *columns(), "--judge", "local:judge-pick-Echo",
                           "--out", tmp_path / "r.jsonl", "--json")
    assert code == 0, err
    report = json.loads(out)  # stdout is the one JSON object and nothing else
    assert set(report) == {"rows", "columns"} and report["rows"] == 5
    assert set(report["columns"]) == {"echo", "terse"}
    for column in report["columns"].values():
        assert set(column) == {"checks", "judge", "tokens", "cost_usd", "latency_ms"}
        assert set(column["judge"]) == {"win_rate", "ci", "position_bias", "unparsable"}
        assert set(column["latency_ms"]) == {"p50", "p95"}
        assert isinstance(column["tokens"], int) and column["tokens"] > 0
        assert column["latency_ms"]["p50"] > 0 and column["latency_ms"]["p95"] >= column["latency_ms"]["p50"]
    echo, terse = report["columns"]["echo"], report["columns"]["terse"]
    assert isinstance(echo["cost_usd"], float) and terse["cost_usd"] is None  # terse has no price
    assert echo["checks"] == {"exact": 1.0, "contains": 1.0} and terse["checks"] == {"exact": 0.0, "contains": 0.0}
    assert (echo["judge"]["win_rate"], terse["judge"]["win_rate"]) == (1.0, 0.0)


def test_the_judge_picks_the_right_column_in_both_orders(home, fake_server, tmp_path, capsys):
    code, out, err = eval_(home, capsys, prompt_set(tmp_path), *columns(), "--judge", "local:judge-pick-Echo",
                           "--out", tmp_path / "r.jsonl", "--json")
    assert code == 0, err
    judged = {name: c["judge"] for name, c in json.loads(out)["columns"].items()}
    assert judged["echo"] == {"win_rate": 1.0, "ci": [1.0, 1.0], "position_bias": 0.0, "unparsable": 0}
    assert judged["terse"]["win_rate"] == 0.0
    # Both orders were asked for every row: echo's reply shown first, then second.
    asked = [r["body"]["messages"][-1]["content"] for r in fake_server.requests
             if r["body"] and r["body"].get("model") == "judge-pick-Echo"]
    assert len(asked) == 10
    assert sum("<answer_a>\nEcho: q0" in a for a in asked) == sum("<answer_b>\nEcho: q0" in a for a in asked) == 1


def test_a_judge_that_always_answers_A_is_reported_fully_biased_with_ties(home, tmp_path, capsys):
    code, out, err = eval_(home, capsys, prompt_set(tmp_path), *columns(), "--judge", "local:judge-always-a",
                           "--out", tmp_path / "r.jsonl", "--json", "--fail-under", "echo:judge=0.6")
    judged = json.loads(out)["columns"]["echo"]["judge"]
    assert (judged["win_rate"], judged["position_bias"], judged["unparsable"]) == (0.5, 1.0, 0)
    assert code == 1 and "echo judge: 0.500 < 0.6" in err


def test_pass_and_fail_exit_codes_and_the_human_summary(home, tmp_path, capsys):
    prompts = prompt_set(tmp_path)
    code, out, err = eval_(home, capsys, prompts, "--column", "echo=local:gpt-4o-mini", "--out", tmp_path / "1.jsonl",
                           "--fail-under", "echo:exact=1", "contains=0")
    assert code == 0, err
    assert "echo  (local:gpt-4o-mini)" in out and re.search(r"exact +100.0% passed", out) and "latency p50" in out
    code, out, err = eval_(home, capsys, prompts, *columns("--fail-under", "exact=0.9"), "--out", tmp_path / "2.jsonl")
    assert code == 1
    assert "FAIL terse exact: 0.000 < 0.9 (exact=0.9)" in err and "FAIL echo" not in err


BAD_INPUT = [
    (["--column", "echo=nowhere:gpt-4o-mini"], "no provider named 'nowhere'"),
    (["--column", "echo=local:no-such-model"], "local serves no model 'no-such-model'"),
    (["--column", "echo"], "must be NAME=PROVIDER:MODEL"),
    (["--column", "a=local:gpt-4o-mini", "--column", "a=local:gpt-4o"], "Column names must differ"),
    (columns("--judge", "local:judge-always-a", "--rubric", "{bad_rubric}"), "must use {{answer_b}}"),
    (["--column", "echo=local:gpt-4o-mini", "--judge", "local:judge-always-a"], "give two or more --column"),
    (columns("--judge", "local:judge-unlisted"), "local serves no model 'judge-unlisted'"),
    (columns("--fail-under", "exactly=0.5"), "'exactly' is not a check"),
    (columns("--fail-under", "regex=0.5"), "no row of the prompt set uses the regex check"),
    (columns("--fail-under", "judge=0.5"), "needs --judge"),
    (columns("--fail-under", "exact=2"), "RATE from 0 to 1"),
    (columns("--fail-under", "tuned:exact=0.5"), "there is no column 'tuned'"),
    (columns("--persona", "Nobody"), "no persona named 'Nobody'"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT)
def test_bad_input_exits_2_with_the_reason_before_anything_is_sent_or_written(home, fake_server, tmp_path, capsys,
                                                                            argv, message):
    rubric = json.loads((ROOT / "templates" / "judge_pairwise.json").read_text())
    rubric["messages"][1]["content"] = "{{conversation}} {{answer_a}}"
    (tmp_path / "rubric.json").write_text(json.dumps(rubric))
    argv = [a.replace("{bad_rubric}", str(tmp_path / "rubric.json")) for a in argv]
    fake_server.clear_requests()

    code, out, err = eval_(home, capsys, prompt_set(tmp_path), *argv, "--out", tmp_path / "r.jsonl")

    assert code == 2 and message in err and err.startswith("error: ") and "Traceback" not in err
    assert out == "" and not (tmp_path / "r.jsonl").exists()
    assert not [r for r in fake_server.requests if r["path"].endswith("completions")]


def test_a_prompt_set_with_broken_lines_exits_2_naming_them(home, tmp_path, capsys):
    path = prompt_set(tmp_path)
    path.write_text(path.read_text() + '{"id": "x", "messages": \n{"prompt": "p", "nope": 1}\n')
    code, out, err = eval_(home, capsys, path, *columns(), "--out", tmp_path / "r.jsonl")
    assert code == 2 and "2 bad lines; nothing was run" in err and "line 6" in err and "line 7" in err
    assert not (tmp_path / "r.jsonl").exists()
    code, _, err = eval_(home, capsys, tmp_path / "missing.jsonl", *columns())
    assert code == 2 and "no such prompt-set file" in err
    code, _, err = eval_(home, capsys, "dataset:nope:validation", *columns())
    assert code == 2 and "no dataset named 'nope'" in err


def test_a_judge_that_never_gives_a_verdict_exits_2(home, tmp_path, capsys):
    code, out, err = eval_(home, capsys, prompt_set(tmp_path), *columns(), "--judge", "local:judge-silent",
                           "--out", tmp_path / "r.jsonl", "--json")
    assert code == 2 and out == ""
    assert "judge local:judge-silent gave no verdict in any of its 10 replies" in err and "[[A]]" in err
    code, out, err = eval_(home, capsys, prompt_set(tmp_path), *columns(), "--judge", "local:fault-401",
                           "--out", tmp_path / "r2.jsonl", "--json")
    assert code == 2 and out == "" and "its requests failed" in err and "(401)" in err


def test_an_existing_results_file_needs_resume_and_a_resumed_run_asks_nothing_again(home, fake_server, tmp_path,
                                                                                   capsys):
    prompts, out_file = prompt_set(tmp_path), tmp_path / "r.jsonl"
    args = [prompts, *columns(), "--judge", "local:judge-pick-Echo", "--out", out_file, "--json"]
    assert eval_(home, capsys, *args)[0] == 0
    lines = out_file.read_text()
    code, _, err = eval_(home, capsys, *args)
    assert code == 2 and "already holds results: add --resume" in err and out_file.read_text() == lines
    fake_server.clear_requests()
    code, out, err = eval_(home, capsys, *args, "--resume")
    assert code == 0 and not [r for r in fake_server.requests if r["path"].endswith("completions")]
    assert json.loads(out)["columns"]["echo"]["checks"]["exact"] == 1.0


def completions(server) -> Counter:
    return Counter((r["body"]["model"], r["body"]["messages"][-1]["content"]) for r in server.requests
                   if r["path"].endswith("completions"))


def test_a_killed_run_resumes_and_pays_for_nothing_twice(home, fake_server, tmp_path):
    fake_server.first_token_delay = 0.05
    prompts, out_file = prompt_set(tmp_path, n=30), tmp_path / "r.jsonl"
    argv = [sys.executable, "-m", "playground", "eval", str(prompts), *columns(), "--judge", "local:judge-pick-Echo",
            "--out", str(out_file), "--concurrency", "2", "--json", "--home", str(home)]
    env = {**os.environ, "LOCAL_KEY": "sk-test"}
    run = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while (not out_file.exists() or out_file.read_bytes().count(b"\n") < 20) and time.monotonic() < deadline:
            assert run.poll() is None, run.stderr.read()
            time.sleep(0.02)
        run.send_signal(signal.SIGKILL)
    finally:
        run.wait(timeout=30)
    survived = out_file.read_bytes().count(b"\n")
    assert 20 <= survived < 124

    resumed = subprocess.run(argv + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert resumed.returncode == 0, resumed.stderr
    # 31 rows x 2 columns, and the judge twice per row: 124 different requests over the two runs, each sent once
    # apart from those in flight when the run was killed (sent, never answered, so sent again): at most 2.
    asked = completions(fake_server)
    assert len(asked) == 124 and sum(n - 1 for n in asked.values()) <= 2
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    keys = [(line["row_id"], line["column"]) for line in lines]
    assert len(keys) == len(set(keys)) == 124
    report = json.loads(resumed.stdout)
    assert report["rows"] == 31 and report["columns"]["echo"]["judge"]["win_rate"] == 1.0


def test_a_dataset_split_and_a_persona(home, fake_server, tmp_path, capsys):
    from playground.core.store import Store
    from tests.finetune_fixtures import add_dataset, town_examples

    add_dataset(Store(home / "playground.db"), "town", town_examples(15))
    code, out, err = eval_(home, capsys, "dataset:town:validation", "--column", "echo=local:gpt-4o-mini",
                           "--persona", "Rude Support Agent", "--out", tmp_path / "r.jsonl", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["rows"] == 3 and set(report["columns"]["echo"]["checks"]) == {"exact"}
    sent = [r["body"]["messages"] for r in fake_server.requests if r["path"].endswith("completions")]
    assert len(sent) == 3 and all(m[0]["role"] == "system" and "support" in m[0]["content"].lower() for m in sent)
