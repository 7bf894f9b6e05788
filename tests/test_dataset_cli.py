import argparse
import json

import pytest

from playground.cli import main
from playground.cli.datasets import add_dataset_commands
from playground.core.store import Store
from playground.datasets.examples import Example, TrainingMessage
from playground.datasets.store import add_examples, get_dataset, iter_examples, list_datasets, update_example

SYSTEM = "Answer questions about Brindlecombe in a few words."
QUESTIONS = ["Who founded it?", "What river is it on?", "How old is the mill?", "Where is the chapel?",
             "When is market day?", "Does the ferry run at night?", "How tall is the lighthouse?",
             "Who keeps the granary?", "Why did the tannery close?", "What grows in the orchard?",
             "Which inn is oldest?", "How many bridges cross the river?"]


def line(user: str, answer: str) -> str:
    return json.dumps({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
                                    {"role": "assistant", "content": answer}]})


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def town_file(tmp_path):
    path = tmp_path / "town.jsonl"
    path.write_text("\n".join(line(q, f"Answer {i}.") for i, q in enumerate(QUESTIONS)) + "\n", encoding="utf-8")
    return path


def run(home, *argv: str) -> int:
    return main(["dataset", *argv, "--home", str(home)])


def store(home) -> Store:
    return Store(home / "playground.db")


def test_the_commands_plug_into_a_root_parser(home, town_file):
    root = argparse.ArgumentParser()
    add_dataset_commands(root.add_subparsers(dest="command"))
    args = root.parse_args(["dataset", "import", str(town_file), "--name", "town", "--home", str(home)])
    assert args.command == "dataset" and args.dataset_handler(args, store(home)) == 0


def test_import_then_list(home, town_file, capsys):
    assert run(home, "import", str(town_file), "--name", "town") == 0
    assert "Imported 12 examples into 'town' (12 openai-chat)." in capsys.readouterr().out
    assert run(home, "list") == 0
    assert capsys.readouterr().out.startswith("town: 12 examples, ")


def test_import_with_bad_lines_lists_them_and_imports_nothing(home, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([line("a?", "b."), "[1, 2]", line("c?", "d."), '{"messages": [{"role": "user"}]}']) + "\n")
    assert run(home, "import", str(path), "--name", "bad") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("line 2: is a JSON array")
    assert err[1].startswith("line 4: ")
    assert "nothing was imported" in err[-1] and "--skip-bad" in err[-1]
    assert list_datasets(store(home)) == []

    assert run(home, "import", str(path), "--name", "bad", "--skip-bad") == 0
    captured = capsys.readouterr()
    assert "Imported 2 examples" in captured.out and "line 2:" in captured.err
    assert get_dataset(store(home), "bad").examples == 2


def test_validate_a_file_prints_each_finding_at_its_line_and_fails_on_errors(home, tmp_path, capsys):
    path = tmp_path / "train.jsonl"
    lines = [line(q, "Yes.") for q in QUESTIONS]
    lines[4] = '{"messages": [{"role": "user", "content": null}, {"role": "assistant", "content": "x"}]}'
    lines[7] = lines[1]
    path.write_text("\n".join(lines) + "\n")
    assert run(home, "validate", str(path)) == 1
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out and all(o.startswith("line ") for o in out)
    assert out[0].startswith("line 5: error missing_content:")
    assert any(o.startswith("line 8: warning duplicate_example:") for o in out)
    assert "1 error" in captured.err


def test_validate_a_clean_file_passes(home, town_file, capsys):
    assert run(home, "validate", str(town_file)) == 0
    assert capsys.readouterr().out == ""


def test_validate_a_stored_dataset_names_example_ids(home, town_file, capsys):
    run(home, "import", str(town_file), "--name", "town")
    first = next(iter_examples(store(home), "town"))
    update_example(store(home), first.id, messages=[{"role": "user", "content": "Who founded it?"},
                                                    {"role": "assistant", "content": " "}])
    capsys.readouterr()
    assert run(home, "validate", "town", "--deploy-prompt", SYSTEM) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"example {first.id}: error missing_content: message 2 (assistant) is empty: write its text or delete it." in out


def test_validate_something_that_is_neither_file_nor_dataset(home, capsys):
    assert run(home, "validate", "no-such-thing") == 1
    assert "neither a file nor a dataset" in capsys.readouterr().err


def test_stats_show_tokens_epochs_and_cost(home, town_file, capsys):
    run(home, "import", str(town_file), "--name", "town")
    capsys.readouterr()
    assert run(home, "stats", "town") == 0
    out = capsys.readouterr().out
    assert "town: 12 examples" in out and "epochs: 8" in out  # 100 // 12
    assert "gpt-4o-mini" in out and "gpt-3.5-turbo" in out and "$" in out
    assert run(home, "stats", "town", "--epochs", "2", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["examples"] == 12 and data["cost"]["epochs"] == 2
    assert data["cost"]["billed_tokens"] == data["tokens_total"] * 2


def test_export_without_a_split_writes_one_file_named_after_the_dataset(home, town_file, tmp_path):
    run(home, "import", str(town_file), "--name", "town")
    out = tmp_path / "out"
    assert run(home, "export", "town", "--format", "openai-chat", "--out", str(out)) == 0
    assert out.joinpath("town.jsonl").read_text(encoding="utf-8") == town_file.read_text(encoding="utf-8")


def test_export_with_a_split_writes_train_validation_and_test(home, town_file, tmp_path, capsys):
    run(home, "import", str(town_file), "--name", "town")
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    for out in (out_a, out_b):
        assert run(home, "export", "town", "--format", "sharegpt", "--split", "60/20/20", "--seed", "7",
                   "--out", str(out)) == 0
    # With LLaMA-Factory's registry of the three files beside them.
    assert sorted(p.name for p in out_a.iterdir()) == ["dataset_info.json", "test.jsonl", "train.jsonl",
                                                       "validation.jsonl"]
    for name in ("train", "validation", "test"):
        assert (out_a / f"{name}.jsonl").read_bytes() == (out_b / f"{name}.jsonl").read_bytes()
    sizes = [len((out_a / f"{n}.jsonl").read_text().splitlines()) for n in ("train", "validation", "test")]
    assert sizes == [7, 3, 2]  # 7.2, 2.4, 2.4 rounded by largest remainder
    assert run(home, "export", "town", "--format", "trl-messages", "--split", "80/20", "--out", str(tmp_path / "c")) == 0
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["axolotl.yml", "train.jsonl", "validation.jsonl"]


def test_export_is_refused_when_validation_has_errors(home, town_file, tmp_path, capsys):
    run(home, "import", str(town_file), "--name", "town")
    first = next(iter_examples(store(home), "town"))
    update_example(store(home), first.id, chosen="", rejected="No.",
                   messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Who?"}])
    capsys.readouterr()
    out = tmp_path / "out"
    assert run(home, "export", "town", "--format", "openai-chat", "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert f"example {first.id}: error missing_content" in err and "not exported" in err
    assert not out.exists()


def test_export_reports_examples_the_format_cannot_hold(home, town_file, tmp_path, capsys):
    run(home, "import", str(town_file), "--name", "town")
    add_examples(store(home), "town", [Example(messages=[
        TrainingMessage(role="system", content=SYSTEM), TrainingMessage(role="user", content="Which way north?")],
        chosen="Up the hill.", rejected="Dunno.")])
    capsys.readouterr()
    out = tmp_path / "out"
    assert run(home, "export", "town", "--format", "openai-dpo", "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert err.count("cannot be written as openai-dpo") == 12 and "nothing written" in err
    assert not out.exists()
    assert run(home, "export", "town", "--format", "openai-dpo", "--out", str(out), "--skip-bad") == 0
    assert len(out.joinpath("town.jsonl").read_text().splitlines()) == 1


def test_excluded_examples_are_not_exported(home, town_file, tmp_path):
    run(home, "import", str(town_file), "--name", "town")
    first = next(iter_examples(store(home), "town"))
    update_example(store(home), first.id, excluded=True)
    out = tmp_path / "out"
    assert run(home, "export", "town", "--format", "openai-chat", "--out", str(out)) == 0
    assert len(out.joinpath("town.jsonl").read_text().splitlines()) == 11


def test_an_unknown_dataset_is_an_error_message_not_a_traceback(home, tmp_path, capsys):
    assert run(home, "stats", "nope") == 1
    assert capsys.readouterr().err.startswith("error: There is no dataset named 'nope'")
    assert run(home, "import", str(tmp_path / "absent.jsonl"), "--name", "x") == 1
    assert "no such file" in capsys.readouterr().err


def test_home_defaults_to_the_environment(home, town_file, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_HOME", str(home))
    assert main(["dataset", "import", str(town_file), "--name", "town"]) == 0
    assert get_dataset(store(home), "town").examples == 12


def test_export_refuses_a_split_that_would_write_an_empty_file(home, tmp_path, capsys):
    path = tmp_path / "six.jsonl"
    path.write_text("\n".join(line(q, f"Answer {i}.") for i, q in enumerate(QUESTIONS[:2])) + "\n", encoding="utf-8")
    run(home, "import", str(path), "--name", "two")
    capsys.readouterr()
    out = tmp_path / "out"
    assert run(home, "export", "two", "--format", "openai-chat", "--split", "60/20/20", "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "would leave the test part empty" in err and "fewer parts" in err
    assert not out.exists()


def test_validate_and_stats_count_with_a_local_tokenizer_and_context(home, town_file, tmp_path, capsys):
    from tests.test_tokens import tiny_tokenizer

    tokenizer = tiny_tokenizer(tmp_path / "hub" / "models--acme--tiny" / "snapshots" / "r1" / "tokenizer.json")
    run(home, "import", str(town_file), "--name", "town")
    capsys.readouterr()

    assert run(home, "stats", "town", "--tokenizer", str(tmp_path / "hub" / "models--acme--tiny"), "--context", "20") == 0
    out = capsys.readouterr().out
    assert "tokens per example for the acme/tiny tokenizer:" in out and "over the 20-token training context" in out
    assert "no price known" in out and "gpt-4o-mini" not in out

    assert run(home, "validate", str(town_file), "--tokenizer", str(tokenizer), "--context", "20") == 0
    out = capsys.readouterr().out
    assert "over_context_limit" in out and "20-token training context of the acme/tiny tokenizer" in out

    assert run(home, "stats", "town", "--tokenizer", str(tmp_path / "nothing")) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_import_skipping_one_bad_line_says_one_bad_line(home, tmp_path, capsys):
    path = tmp_path / "one_bad.jsonl"
    path.write_text("\n".join([line("a?", "b."), "[1, 2]"]) + "\n")
    assert run(home, "import", str(path), "--name", "one") == 1
    err = capsys.readouterr().err
    assert "error: 1 bad line in" in err and "Fix it, or pass --skip-bad" in err
    assert run(home, "import", str(path), "--name", "one", "--skip-bad") == 0
    assert "Skipped 1 bad line:" in capsys.readouterr().err
