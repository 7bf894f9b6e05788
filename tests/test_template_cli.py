import json
import subprocess
import sys
from pathlib import Path

import pytest

from playground.cli import main
from playground.core.messages import Message
from playground.core.tokens import count_messages, count_text

ROOT = Path(__file__).resolve().parent.parent


def render(capsys, *args) -> tuple[int, str, str]:
    code = main(["template", "render", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path, data, name="t.json") -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else (data if isinstance(data, str) else json.dumps(data, indent=2)).encode())
    return path


def test_render_prints_the_filled_messages_and_their_tokens(capsys):
    code, out, err = render(capsys, ROOT / "templates" / "translate.json", "-v", "language=Welsh", "-v", "text=Good night")
    assert code == 0
    messages = json.loads(out)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "into Welsh." in messages[0]["content"] and messages[1]["content"] == "Good night"
    tokens = count_messages([Message(**m) for m in messages], "gpt-4o-mini")
    assert err.startswith(f"{tokens} prompt tokens") and "gpt-4o-mini" in err


def test_a_completion_template_prints_its_prompt_text(capsys):
    code, out, err = render(capsys, ROOT / "templates" / "qa_completion.json", "-v", "question=Is it open today?")
    assert code == 0
    assert out.endswith("Q: Is it open today?\nA:\n")
    assert err.startswith(f"{count_text(out[:-1], 'davinci-002')} prompt tokens") and "davinci-002" in err


def test_model_option_counts_for_that_model(capsys):
    code, _, err = render(capsys, ROOT / "templates" / "translate.json", "--model", "llama3.2")
    assert code == 0 and err.startswith("~") and "no price set for llama3.2" in err


def test_a_persona_file_renders(capsys):
    code, out, _ = render(capsys, ROOT / "personas" / "professor_brack.json")
    assert code == 0 and "the Silo on Gorse Lane" in json.loads(out)[0]["content"]


def test_a_value_holding_braces_is_printed_literally(capsys):
    code, out, _ = render(capsys, ROOT / "templates" / "translate.json", "-v", "text={{language}} stays")
    assert code == 0 and json.loads(out)[1]["content"] == "{{language}} stays"


@pytest.mark.parametrize("data, args, expected", [
    ({"messages": [{"role": "user", "content": "{{a}} {{b}}"}]}, ["-v", "a=1"],
     "no value for the variable {{b}}: pass -v b=VALUE."),
    ({"messages": [{"role": "user", "content": "{{a}} {{b}}"}]}, ["-v", "a="],
     "no value for the variables {{a}}, {{b}}: pass -v a=VALUE -v b=VALUE."),
    ({"messages": [{"role": "robot", "content": "x"}]}, [], "line 4, field 'messages.0.role'"),
    ({"temprature": 1, "messages": [{"role": "user", "content": "x"}]}, [], "field 'temprature': unknown field"),
    ({"messages": []}, [], "has no messages"),
    ("", [], "is empty"),
    ('{"messages": [\n  {"role": "user", "content": "x"}\n  {"role": "user"}]}', [], "line 3: is not valid JSON"),
    ("caf\u00e9".encode("latin-1"), [], "is not valid UTF-8"),
])
def test_bad_templates_exit_1_saying_where(capsys, tmp_path, data, args, expected):
    path = write(tmp_path, data)
    code, out, err = render(capsys, path, *args)
    assert code == 1 and out == ""
    assert err.startswith(f"error: {path}") and expected in err, err


def test_a_missing_file_exits_1(capsys, tmp_path):
    code, _, err = render(capsys, tmp_path / "nope.json")
    assert code == 1 and "nope.json: cannot be read" in err


def test_a_malformed_assignment_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["template", "render", str(ROOT / "templates" / "translate.json"), "-v", "novalue"])
    assert caught.value.code == 2
    assert "'novalue' is not NAME=VALUE" in capsys.readouterr().err


def test_the_command_runs_as_a_module(tmp_path):
    done = subprocess.run([sys.executable, "-m", "playground", "template", "render", "templates/review_sentiment.json",
                           "-v", "review=Lovely."], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PLAYGROUND_HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                               "TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken")})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[-1] == {"role": "user", "content": "Lovely."}
    missing = subprocess.run([sys.executable, "-m", "playground", "template", "render", "templates/review_sentiment.json",
                              "-v", "review="], cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={"PLAYGROUND_HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                                  "TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken")})
    assert missing.returncode == 1 and "{{review}}" in missing.stderr
