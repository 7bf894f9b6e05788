import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from playground.core import tokens
from playground.core.messages import Message

ROOT = Path(__file__).resolve().parent.parent
URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# tiktoken's own expected_hash for each file (tiktoken_ext/openai_public.py): it refuses a cached file that differs.
SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}


@pytest.mark.parametrize("model, encoding, exact", [
    ("gpt-4o", "o200k_base", True),
    ("gpt-4o-mini", "o200k_base", True),
    ("gpt-4o-mini-2024-07-18", "o200k_base", True),
    ("gpt-4.1-mini", "o200k_base", True),
    ("ft:gpt-4.1-mini-2025-04-14:org::x", "o200k_base", True),
    ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base", True),
    ("GPT-4o", "o200k_base", True),
    ("o3-mini", "o200k_base", True),
    ("gpt-3.5-turbo", "cl100k_base", True),
    ("gpt-4", "cl100k_base", True),
    ("gpt-4-turbo", "cl100k_base", True),
    ("davinci-002", "cl100k_base", True),
    ("babbage-002", "cl100k_base", True),
    ("ft:gpt-3.5-turbo-0613:personal::7zuPTNEA", "cl100k_base", True),
    ("ft:davinci-002:personal::abc", "cl100k_base", True),
    ("llama3.2", "o200k_base", False),
    ("qwen2.5:7b-instruct", "o200k_base", False),
    ("lookup", "o200k_base", False),
])
def test_encoding_name(model, encoding, exact):
    assert tokens.encoding_name(model) == (encoding, exact)


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_cache_names_are_what_tiktoken_looks_for(name):
    assert tokens.CACHE_NAMES[name] == hashlib.sha1(URL.format(name).encode()).hexdigest()


OFFLINE_SCRIPT = """
import json, sys
import tiktoken
from playground.core.messages import Message
from playground.core.tokens import count_messages, count_text
out = {
    "gpt-4o": count_text("hello world", "gpt-4o"),
    "gpt-3.5-turbo": count_text("hello world", "gpt-3.5-turbo"),
    "llama3.2": count_text("Who founded Brindlecombe?", "llama3.2"),
    "messages": count_messages([Message(role="user", content="Hi there")], "gpt-4o-mini"),
}
try:
    tiktoken.get_encoding("r50k_base")  # not shipped: proves a download would have failed
    out["download"] = "worked"
except Exception as e:
    out["download"] = type(e).__name__
print(json.dumps(out))
"""


def test_counting_works_offline_with_an_empty_cache(tmp_path):
    cache = tmp_path / "empty-cache"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "https_proxy", "http_proxy", "all_proxy")}
    env.update(TIKTOKEN_CACHE_DIR=str(cache), HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["download"] != "worked"
    assert (out["gpt-4o"], out["gpt-3.5-turbo"], out["llama3.2"]) == (2, 2, 6)
    assert out["messages"] == 3 + (3 + 1 + 2)
    assert sorted(p.name for p in cache.iterdir()) == sorted(tokens.CACHE_NAMES.values())
    for name, cache_name in tokens.CACHE_NAMES.items():
        assert hashlib.sha256((cache / cache_name).read_bytes()).hexdigest() == SHA256[name]


def test_seeding_from_many_threads_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def seed() -> None:
        start.wait()
        try:
            tokens.seed_cache()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=seed) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(tokens.CACHE_NAMES.values())
    for name, cache_name in tokens.CACHE_NAMES.items():
        assert hashlib.sha256((tmp_path / cache_name).read_bytes()).hexdigest() == SHA256[name]


@pytest.mark.parametrize("model, tokens_of", [
    # cl100k_base: system=1, "You are terse."=You| are| terse|. =4, user=1, "Hi there"=Hi| there =2
    ("gpt-3.5-turbo", {"system": 1, "You are terse.": 4, "user": 1, "Hi there": 2}),
    # o200k_base splits these strings the same way
    ("gpt-4o-mini", {"system": 1, "You are terse.": 4, "user": 1, "Hi there": 2}),
])
def test_count_messages_follows_the_cookbook(model, tokens_of):
    encoding = tokens.encoding(tokens.encoding_name(model)[0])
    assert {text: len(encoding.encode(text)) for text in tokens_of} == tokens_of
    messages = [Message(role="system", content="You are terse."), Message(role="user", content="Hi there")]
    per_message = 3
    reply_priming = 3
    expected = (per_message + tokens_of["system"] + tokens_of["You are terse."]) + \
               (per_message + tokens_of["user"] + tokens_of["Hi there"]) + reply_priming
    assert expected == 17
    assert tokens.count_messages(messages, model) == expected


@pytest.mark.parametrize("text, model, expected", [
    ("hello world", "gpt-4o", 2),
    ("hello world", "davinci-002", 2),
    ("", "gpt-4o", 0),
    ("<|endoftext|>", "gpt-4o", 7),  # typed by a user: plain text, never a special token or an error
    ("Who founded Brindlecombe?", "gpt-3.5-turbo", 6),
])
def test_count_text(text, model, expected):
    assert tokens.count_text(text, model) == expected


def test_count_messages_of_nothing_is_the_reply_priming():
    assert tokens.count_messages([], "gpt-4o") == 3


# --- open models' tokenizers from local files ------------------------------------------------------------


def tiny_tokenizer(path):
    """A word-level tokenizer trained here on a few sentences, saved as a Hugging Face tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", "<s>"])
    tokenizer.train_from_iterator(["the mill is old", "the ferry runs at dawn", "who built the mill"], trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


def test_an_open_models_tokenizer_counts_from_a_local_tokenizer_json(tmp_path):
    from playground.core.tokens import count_text, encoding_name, model_label, tokenizer_ref

    ref = tokenizer_ref(tiny_tokenizer(tmp_path / "tok" / "tokenizer.json"))
    assert ref.startswith("tokenizer:") and encoding_name(ref) == (ref, True)
    assert count_text("the mill is old", ref) == 4
    assert count_text("the windmill, unknown", ref) == 4  # word-level: unknown words are one [UNK] each, "," too
    assert count_text("the mill is old", "gpt-4o-mini") == 4 and count_text("the windmill, unknown", "gpt-4o-mini") != 4
    assert model_label(ref) == "the tok tokenizer"
    assert tokenizer_ref(tmp_path / "tok") == ref  # the folder holding it


def test_a_hugging_face_cache_folder_gives_its_newest_snapshot(tmp_path):
    from playground.core.tokens import model_label, tokenizer_ref

    folder = tmp_path / "hub" / "models--acme--tiny-llama"
    tiny_tokenizer(folder / "snapshots" / "0a1b2c" / "tokenizer.json")
    ref = tokenizer_ref(folder)
    assert ref.endswith("snapshots/0a1b2c/tokenizer.json") and model_label(ref) == "the acme/tiny-llama tokenizer"
    assert tokenizer_ref(tmp_path / "hub") == ref  # the hub folder itself, holding one model


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "nowhere", "no such file or folder"),
    (lambda p: p.joinpath("empty").mkdir() or p / "empty", "there is no tokenizer.json in it"),
    (lambda p: p.joinpath("bad.json").write_text("{}") and p / "bad.json", "is not a Hugging Face tokenizer file"),
])
def test_a_missing_or_bad_tokenizer_is_refused_saying_what_to_give(tmp_path, make, message):
    from playground.core.tokens import TokenizerNotFound, tokenizer_ref

    with pytest.raises(TokenizerNotFound, match=message):
        tokenizer_ref(make(tmp_path))


def test_validation_and_stats_count_with_the_tokenizer_against_the_given_context(tmp_path):
    from playground.core.tokens import tokenizer_ref
    from playground.datasets.examples import Example
    from playground.datasets.stats import dataset_stats
    from playground.datasets.validation import validate_examples

    ref = tokenizer_ref(tiny_tokenizer(tmp_path / "models--acme--tiny" / "tokenizer.json"))
    examples = [Example(messages=[{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": f"who built the mill {'the ' * i}"},
                                  {"role": "assistant", "content": "the ferry"}], id=i + 1) for i in range(12)]
    stats = dataset_stats(examples, ref, context=30)
    assert stats.context_limit == 30 and stats.cost.usd is None
    assert stats.tokens_min == 3 + (3 + 1 + 3) + (3 + 1 + 4) + (3 + 1 + 2)  # per message 3 + role + words, +3
    over = [f for f in validate_examples(examples, ref, context=30) if f.code == "over_context_limit"]
    assert over and "30-token training context of the acme/tiny tokenizer" in over[0].message
    assert all(f.example_id > 1 for f in over)
