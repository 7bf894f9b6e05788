import sqlite3
import threading

import pytest
from sqlite_utils import Database

from playground.core.store import Exchange, Store


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "playground.db")


def chat_exchange(user: str = "Where is the kettle?", reply: str = "On the base.", **extra) -> Exchange:
    request = {"model": "gpt-4o-mini", "temperature": 0.7,
               "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": user}]}
    return Exchange(**{"conversation_id": "c1", "model": "gpt-4o-mini", "provider": "local", "request": request,
                       "reply": reply, **extra})


def ids(rows) -> list:
    return [r["id"] for r in rows]


# ---------------------------------------------------------------- schema


def test_migrations_on_a_blank_database(tmp_path):
    Store(tmp_path / "blank.db")
    db = Database(tmp_path / "blank.db")
    assert db["conversations"].columns_dict == {
        "id": str, "title": str, "persona": str, "provider": str, "model": str, "settings": str,
        "transcript": str, "transcript_text": str, "created_at": str, "updated_at": str, "continued_from": str,
    }
    assert db["conversations"].pks == ["id"]
    assert db["exchanges"].columns_dict == {
        "id": int, "conversation_id": str, "turn": int, "persona": str, "provider": str, "model": str,
        "mode": str, "request": str, "request_text": str, "reply": str, "finish_reason": str,
        "prompt_tokens": int, "completion_tokens": int, "tokens_counted": int, "cost_usd": float,
        "ttft_ms": float, "duration_ms": float, "error": str, "incomplete": int, "rating": int, "created_at": str,
        "status": str, "pid": int, "process": str, "updated_at": str,
    }
    assert db["exchanges"].pks == ["id"]
    assert db["lookup_examples"].columns_dict == {
        "id": int, "dataset": str, "fingerprint": str, "user_text": str, "reply": str}
    assert db["exchanges"].detect_fts() == "exchanges_fts"
    assert db["conversations"].detect_fts() == "conversations_fts"
    assert db["lookup_examples"].detect_fts() == "lookup_examples_fts"
    assert {tuple(i.columns) for i in db["exchanges"].indexes} >= {("conversation_id", "turn"), ("created_at",), ("status",)}
    assert [r["name"] for r in db["_sqlite_migrations"].rows] == MIGRATIONS


# Every migration that ships is added here: a blank database gets all of them, in order.
MIGRATIONS = ["m001_initial", "m002_datasets", "m003_ab", "m004_templates", "m005_finetune", "m006_exchange_status",
              "m007_example_tools", "m008_judge_verdicts"]


def test_journal_mode_is_wal(store):
    conn = sqlite3.connect(store.path)
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_opening_twice_keeps_data_and_applies_nothing_again(tmp_path):
    Store(tmp_path / "p.db").log_exchange(chat_exchange())
    again = Store(tmp_path / "p.db")
    assert len(again.exchanges()) == 1
    assert Database(tmp_path / "p.db")["_sqlite_migrations"].count == len(MIGRATIONS)


def test_the_parent_folder_is_created(tmp_path):
    Store(tmp_path / "new" / "deeper" / "p.db")
    assert (tmp_path / "new" / "deeper" / "p.db").is_file()


# ---------------------------------------------------------------- exchanges


def test_log_exchange_round_trip(store):
    sent = chat_exchange(turn=3, persona="Rude Support Agent", finish_reason="stop", prompt_tokens=21,
                         completion_tokens=4, tokens_counted=True, cost_usd=0.0000056, ttft_ms=12.5,
                         duration_ms=80.0, incomplete=False)
    exchange_id = store.log_exchange(sent)
    got = store.exchange(exchange_id)
    assert got["request"] == sent.request
    assert got["request_text"] == "Where is the kettle?"
    assert {k: got[k] for k in ("conversation_id", "turn", "persona", "model", "provider", "mode", "reply",
                                "finish_reason", "prompt_tokens", "completion_tokens", "cost_usd", "ttft_ms",
                                "duration_ms", "error", "rating", "created_at")} == {
        "conversation_id": "c1", "turn": 3, "persona": "Rude Support Agent", "model": "gpt-4o-mini",
        "provider": "local", "mode": "chat", "reply": "On the base.", "finish_reason": "stop", "prompt_tokens": 21,
        "completion_tokens": 4, "cost_usd": 0.0000056, "ttft_ms": 12.5, "duration_ms": 80.0, "error": None,
        "rating": 0, "created_at": sent.created_at}
    assert (got["tokens_counted"], got["incomplete"]) == (1, 0)


def test_a_failed_partial_exchange_is_logged_as_such(store):
    exchange_id = store.log_exchange(chat_exchange(reply="Partial one", error="The stream broke off.", incomplete=True))
    got = store.exchange(exchange_id)
    assert (got["reply"], got["error"], got["incomplete"]) == ("Partial one", "The stream broke off.", 1)


def test_a_completion_request_is_searchable_by_its_prompt(store):
    store.log_exchange(Exchange(conversation_id="c2", model="davinci-002", provider="local", mode="completion",
                                request={"model": "davinci-002", "prompt": "Q: Who founded Brindlecombe?\nA:"},
                                reply=" Adelaide Crouch."))
    [row] = store.exchanges("brindlecombe")
    assert row["request"]["prompt"].startswith("Q: Who founded")


def test_exchanges_are_most_recent_first_with_a_limit(store):
    logged = [store.log_exchange(chat_exchange(user=f"question {i}")) for i in range(5)]
    assert ids(store.exchanges()) == logged[::-1]
    assert ids(store.exchanges(limit=2)) == logged[:2:-1]


@pytest.mark.parametrize("query, expected", [
    ("kettle", ["kettle"]),            # in the request
    ("descale", ["kettle"]),           # in the reply
    ("lamp", ["lamp"]),
    ("KETTLE!", ["kettle"]),
    ("kettles", ["kettle"]),           # porter stemming
    ("kettle lamp", []),               # every word must match
    ("terse", []),                     # system prompts are not searched
    ("nothing-like-it", []),
])
def test_search_over_request_and_reply(store, query, expected):
    by_id = {store.log_exchange(chat_exchange(user="My kettle clicks off", reply="Descale it.")): "kettle",
             store.log_exchange(chat_exchange(user="Light the lamp", reply="You light the lamp.")): "lamp"}
    assert [by_id[i] for i in ids(store.exchanges(query))] == expected


@pytest.mark.parametrize("query", ['"', "*", "AND(", "", "   ", "kettle AND(", 'say "hi', "NOT", "col:umn", "^", "-"])
def test_search_punctuation_never_crashes(store, query):
    store.log_exchange(chat_exchange(user="My kettle clicks off"))
    rows = store.exchanges(query)
    assert isinstance(rows, list)
    if not query.strip():
        assert len(rows) == 1


def test_search_within_one_conversation(store):
    store.log_exchange(chat_exchange(conversation_id="a", user="kettle one"))
    wanted = store.log_exchange(chat_exchange(conversation_id="b", user="kettle two"))
    assert ids(store.exchanges("kettle", conversation_id="b")) == [wanted]
    assert ids(store.exchanges(conversation_id="b")) == [wanted]


def test_rate_an_exchange(store):
    exchange_id = store.log_exchange(chat_exchange())
    store.rate(exchange_id, 1)
    assert store.exchange(exchange_id)["rating"] == 1
    store.rate(exchange_id, -1)
    assert store.exchange(exchange_id)["rating"] == -1
    assert ids(store.exchanges("kettle")) == [exchange_id]  # the FTS triggers survive the update


def test_concurrent_writes_lose_nothing(store):
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def write(n: int) -> None:
        start.wait()
        try:
            for i in range(25):
                store.log_exchange(chat_exchange(conversation_id=f"t{n}", turn=i, user=f"thread{n} turn{i} kettle"))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = store.exchanges(limit=1000)
    assert len(rows) == len({r["id"] for r in rows}) == 200
    assert {(r["conversation_id"], r["turn"]) for r in rows} == {(f"t{n}", i) for n in range(8) for i in range(25)}
    assert len(store.exchanges("kettle", limit=1000)) == 200


# ---------------------------------------------------------------- conversations


def save(store, cid="c1", title="Kettle trouble", transcript=None, **extra):
    transcript = transcript if transcript is not None else [
        {"role": "assistant", "content": "Support. What now?", "error": None},
        {"role": "user", "content": "My kettle clicks off", "error": None},
    ]
    store.save_conversation(cid, **{"title": title, "persona": "Rude Support Agent", "provider": "local",
                                    "model": "local:gpt-4o-mini", "settings": {"temperature": 0.9},
                                    "transcript": transcript, **extra})


def test_save_conversation_inserts_then_updates(store):
    save(store)
    first = store.conversation("c1")
    assert first["transcript"][1]["content"] == "My kettle clicks off"
    assert first["settings"] == {"temperature": 0.9}
    assert first["created_at"] == first["updated_at"]
    save(store, title="Kettle trouble, continued", transcript=[{"role": "user", "content": "Still broken"}])
    second = store.conversation("c1")
    assert second["title"] == "Kettle trouble, continued"
    assert second["transcript"] == [{"role": "user", "content": "Still broken"}]
    assert second["created_at"] == first["created_at"] and second["updated_at"] >= first["updated_at"]
    assert len(store.conversations()) == 1


def test_an_unknown_conversation_is_none(store):
    assert store.conversation("nope") is None


def test_a_long_title_is_cut(store):
    save(store, title="x" * 500)
    assert len(store.conversation("c1")["title"]) == 120


def test_conversations_are_listed_and_searched(store):
    save(store, "a", title="Kettle trouble")
    save(store, "b", title="Lighthouse", transcript=[{"role": "user", "content": "Light the beacon", "error": None}])
    assert ids(store.conversations()) == ["b", "a"]
    assert set(store.conversations()[0]) == {"id", "title", "persona", "model", "updated_at"}
    assert ids(store.conversations("kettle")) == ["a"]
    assert ids(store.conversations("beacon")) == ["b"]
    assert ids(store.conversations("what")) == ["a"]
    assert ids(store.conversations('"AND(*')) == []


@pytest.mark.parametrize("word", ["role", "content", "user", "assistant", "error", "null"])
def test_conversation_search_does_not_match_the_transcript_format(store, word):
    save(store)
    assert store.conversations(word) == []


# ---------------------------------------------------------------- lookup index


def test_lookup_finds_the_best_matching_reply(store):
    store.index_lookup("d.jsonl", "f1", [("open the drawer", "Inside: a lamp."), ("go north", "You reach the yard.")])
    assert store.lookup("d.jsonl", "Open drawer!") == "Inside: a lamp."
    assert store.lookup("d.jsonl", "north") == "You reach the yard."
    assert store.lookup("d.jsonl", "zebra") is None
    assert store.lookup("d.jsonl", '"*(') is None
    assert store.lookup("other.jsonl", "north") is None


def test_lookup_index_rebuilds_only_on_a_new_fingerprint(store):
    store.index_lookup("d.jsonl", "f1", [("go north", "old reply")])
    store.index_lookup("d.jsonl", "f1", [("go north", "new reply")])
    assert store.lookup("d.jsonl", "north") == "old reply"
    store.index_lookup("d.jsonl", "f2", [("go north", "new reply")])
    assert store.lookup("d.jsonl", "north") == "new reply"
    with store.db() as db:
        assert db["lookup_examples"].count_where("dataset = ?", ["d.jsonl"]) == 1


def test_lookup_indexes_are_per_dataset(store):
    store.index_lookup("a.jsonl", "f1", [("go north", "from a")])
    store.index_lookup("b.jsonl", "f1", [("go north", "from b")])
    assert store.lookup("a.jsonl", "north") == "from a"
    assert store.lookup("b.jsonl", "north") == "from b"


def test_concurrent_first_lookups_index_once(store):
    pairs = [(f"question {i}", f"reply {i}") for i in range(50)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def index() -> None:
        start.wait()
        try:
            store.index_lookup("d.jsonl", "f1", pairs)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=index) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.db() as db:
        assert db["lookup_examples"].count == 50
