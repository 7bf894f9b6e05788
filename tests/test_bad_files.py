"""Bad files are never fatal: deep nesting, huge files, over-long lines, decompression bombs, unclosed {{.

Each is a clear problem naming the file (and the line where there is one): in the domain, as one line and exit
code 1 from the CLI, and in the list of problems the app shows when it starts anyway.
"""

import base64
import json
import tracemalloc
import zlib
from pathlib import Path

import httpx
import pytest

from playground.chat.cards import read_card
from playground.chat.personas import load_personas
from playground.core.errors import FileProblem
from playground.core.prompts import FILE_SIZE_LIMIT, load_template
from playground.datasets.formats.readers import LINE_LIMIT, read_examples
from playground.providers.openai import load_providers_file
from tests.test_cards import chunk, png
from tests.test_cli import run

DEEP = "[" * 100_000
GOOD_PERSONA = {"name": "Good", "messages": [{"role": "system", "content": "Be {{mood}}."}]}


def bomb_chunk(kind: bytes, inflated: int = 300 * 1024 * 1024) -> bytes:
    """A card text chunk of a few hundred KB that inflates to `inflated` bytes (built without holding them)."""
    squeezer, block = zlib.compressobj(9), b"A" * (1024 * 1024)
    data = b"".join(squeezer.compress(block) for _ in range(inflated // len(block))) + squeezer.flush()
    if kind == b"zTXt":
        return chunk(b"zTXt", b"chara\x00\x00" + data)
    return chunk(b"iTXt", b"chara\x00\x01\x00\x00\x00" + data)


def persona_files(folder: Path) -> dict[str, str]:
    """One file per bad input (and a good one), by file name -> what its problem must say."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = {
        "deep.json": (DEEP, "too deeply"),
        "deep_field.json": ('{"name": "D", "messages": ' + DEEP, "too deeply"),
        "huge.json": ('{"name": "H", "description": "' + "x" * FILE_SIZE_LIMIT + '", "messages": []}',
                      "larger than 4 MB"),
        "blank.json": ('{"name": "  ", "messages": []}', "field 'name': is blank: give the persona a name"),
        "unclosed.json": ('{"name": "U",\n "messages": [\n  {"role": "system", "content": "Speak {{language"}\n ]\n}',
                          "line 3, field 'messages.0.content': '{{language' opens a variable that is never closed"),
    }
    for name, (text, _) in bad.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "good.json").write_text(json.dumps(GOOD_PERSONA), encoding="utf-8")
    return {name: expected for name, (_, expected) in bad.items()}


def test_each_bad_persona_file_is_a_problem_naming_it_and_the_rest_load(tmp_path):
    expected = persona_files(tmp_path)
    personas, problems = load_personas(tmp_path)

    assert list(personas) == ["Good"]
    by_file = {Path(p.path).name: str(p) for p in problems}
    assert by_file.keys() == expected.keys()
    for name, says in expected.items():
        assert by_file[name].startswith(str(tmp_path / name)) and says in by_file[name], by_file[name]


@pytest.mark.parametrize("text, says", [
    (DEEP, "too deeply"),
    ('{"providers": [' + '{"a": ' * 50_000, "too deeply"),
    ('{"providers": [], "x": "' + "y" * FILE_SIZE_LIMIT + '"}', "larger than 4 MB"),
])
def test_a_bad_providers_file_is_a_file_problem(tmp_path, text, says):
    path = tmp_path / "providers.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FileProblem, match=says) as raised:
        load_providers_file(path)
    assert raised.value.path == str(path)


@pytest.mark.parametrize("content, says", [
    ("{{ language", "'{{ language' opens a variable that is never closed"),
    ("Hi {{name}} in {{lang", "'{{lang' opens"),
    ("{{a {{b}}", "'{{a' opens"),
])
def test_an_unclosed_variable_in_a_template_names_the_line(tmp_path, content, says):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "ok {{x}}"},
                                             {"role": "user", "content": content}]}, indent=1), encoding="utf-8")
    with pytest.raises(FileProblem, match=says) as raised:
        load_template(path)
    assert (raised.value.line, raised.value.field) == (9, "messages.1.content")  # the second content's line


@pytest.mark.parametrize("content", ["{{x}} and {{ y }}", "literal {single} braces", "macro {{random::a::b}}", "}} {x"])
def test_closed_or_single_braces_are_not_unclosed_variables(tmp_path, content):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": content}]}), encoding="utf-8")
    assert load_template(path).messages[0].content == content


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt"])
def test_a_card_whose_text_chunk_inflates_to_300_mb_is_refused_without_inflating_it(tmp_path, kind):
    path = tmp_path / "bomb.png"
    path.write_bytes(png(bomb_chunk(kind)))
    assert path.stat().st_size < 2 * 1024 * 1024

    tracemalloc.start()
    try:
        with pytest.raises(FileProblem, match="inflates to more than 8 MB") as raised:
            read_card(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raised.value.path == str(path)
    assert peak < 64 * 1024 * 1024, peak  # a few times the 8 MB cap at most, never the 300 MB


@pytest.mark.parametrize("name, content, says", [
    ("deep.json", DEEP.encode(), "too deeply"),
    ("deep.png", png(chunk(b"zTXt", b"chara\x00\x00" + zlib.compress(base64.b64encode(DEEP.encode())))),
     "too deeply"),
    ("huge.json", b'{"data": "' + b"x" * FILE_SIZE_LIMIT + b'"}', "larger than 4 MB"),
])
def test_a_deep_or_huge_card_is_a_file_problem(tmp_path, name, content, says):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileProblem, match=says):
        read_card(path)


def test_a_deep_or_over_long_dataset_line_is_a_bad_line_and_the_others_are_read(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    path = tmp_path / "data.jsonl"
    with path.open("w", encoding="utf-8") as f:
        f.write(good + "\n" + DEEP + "\n" + '{"messages": "' + "z" * (LINE_LIMIT + 10) + '"}\n' + good + "\n")

    examples, problems = read_examples(path, skip_bad=True)

    assert len(examples) == 2 and [e.source.line for e in examples] == [1, 4]
    assert [(p.line, p.code) for p in problems] == [(2, "too_deep"), (3, "line_too_long")]
    assert "longer than 32 MB" in problems[1].message


# --- the command line: exit 1, one line, no traceback ---------------------------------------------------


@pytest.fixture
def bad_inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "deep.json").write_text(DEEP)
    (folder / "deep.jsonl").write_text(DEEP + "\n")
    (folder / "bomb.png").write_bytes(png(bomb_chunk(b"zTXt")))
    (folder / "huge.json").write_text('{"x": "' + "y" * FILE_SIZE_LIMIT + '"}')
    (folder / "unclosed.json").write_text('{"messages": [{"role": "user", "content": "{{language"}]}')
    (folder / "blank.json").write_text('{"spec": "chara_card_v2", "data": {"name": "  "}}')
    return folder


@pytest.mark.parametrize("args, says", [
    (["persona", "import", "deep.json"], "deep.json: is not a usable card: it nests [ ] or { } too deeply"),
    (["persona", "import", "bomb.png"], "bomb.png: has a compressed 'chara' chunk that inflates to more than 8 MB"),
    (["persona", "import", "huge.json"], "huge.json: is larger than 4 MB"),
    (["persona", "import", "blank.json"], "blank.json, field 'data.name': has no character name"),
    (["dataset", "import", "deep.jsonl", "--name", "d"], "1 bad line"),
    (["dataset", "validate", "deep.jsonl"], "too_deep: nests [ ] or { } too deeply"),
    (["template", "render", "deep.json"], "deep.json: nests [ ] or { } too deeply"),
    (["template", "render", "huge.json"], "huge.json: is larger than 4 MB"),
    (["template", "render", "unclosed.json"], "unclosed.json, line 1, field 'messages.0.content': '{{language' opens"),
])
def test_the_cli_reports_a_bad_file_in_one_line_with_exit_code_1(bad_inputs, tmp_path, args, says):
    args = [str(bad_inputs / a) if (bad_inputs / a).exists() else a for a in args]
    extra = ["--personas-dir", str(tmp_path / "personas")] if args[0] == "persona" else []
    done = run(*args, *extra, home=tmp_path / "home")

    assert done.returncode == 1, done
    said = done.stdout + done.stderr  # validate prints its findings ("line N: ...") on stdout
    assert "Traceback" not in said and says in said, said
    assert not (tmp_path / "personas").exists() or not list((tmp_path / "personas").iterdir())


# --- the app starts and lists the problems ----------------------------------------------------------------


def test_the_app_starts_with_bad_persona_and_providers_files_and_lists_each(tmp_path, _home):
    from playground.services import build_services
    from playground.ui.app import LAUNCH_DEFAULTS, build_app, launch

    expected = persona_files(tmp_path / "personas")
    _home.mkdir(parents=True, exist_ok=True)
    (_home / "providers.json").write_text(DEEP)
    services = build_services(home=_home, personas_dir=tmp_path / "personas", environ={}, detect_local=False,
                              discover=False)
    assert list(services.personas) == ["Good"]

    demo = build_app(services)
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True,
                            **LAUNCH_DEFAULTS)
    try:
        page = json.dumps(httpx.get(url + "config", timeout=30).json())
    finally:
        demo.close()
    assert "Some files could not be used" in page
    assert json.dumps(f"{_home / 'providers.json'}: nests [ ] or {{ }} too deeply")[1:-1] in page
    for name, says in expected.items():
        assert json.dumps(str(tmp_path / "personas" / name))[1:-1] in page and json.dumps(says)[1:-1] in page
