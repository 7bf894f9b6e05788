"""The SQLite store: every exchange, every conversation, the lookup index.

A sqlite-utils Database must not cross threads and Gradio runs handlers in worker threads,
so each operation opens its own connection; WAL lets readers and a writer work at once.
This module and migrations.py are the only users of sqlite-utils: the other stores type their handles with
the `Database` and catch the `NotFoundError` named here.
"""

import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.db import NotFoundError

from .migrations import migrations
from .processes import is_gone, process_key

__all__ = ["Database", "NotFoundError", "Store", "Exchange", "SavedConversation", "new_id", "now"]

INTERRUPTED = "Interrupted: the app stopped before the reply was finished. Retry to ask again."


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class Exchange:
    """One request and its reply (or failure), as logged."""

    conversation_id: str
    model: str
    provider: str
    request: dict
    persona: str = ""
    turn: int = 0
    mode: str = "chat"
    reply: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_counted: bool = False
    cost_usd: float | None = None
    ttft_ms: float | None = None
    duration_ms: float | None = None
    error: str | None = None
    incomplete: bool = False
    rating: int = 0
    created_at: str = field(default_factory=now)
    status: str = ""  # in_flight, done, error, stopped or interrupted; empty: done, or error when there is one

    def request_text(self) -> str:
        if "prompt" in self.request:
            return self.request["prompt"]
        return "\n".join(m["content"] for m in self.request.get("messages", []) if m["role"] != "system")


@dataclass
class SavedConversation:
    """A conversation as the conversations table holds it (transcript: the turns as dicts)."""

    id: str
    title: str
    persona: str
    provider: str
    model: str
    settings: dict
    transcript: list[dict]
    continued_from: str | None = None


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.process = process_key()  # names this process on the rows it writes while a reply is in flight
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            migrations.apply(db)

    @contextmanager
    def db(self) -> Iterator[Database]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            yield Database(conn)
        finally:
            conn.close()

    @contextmanager
    def writing(self) -> Iterator[Database]:
        """A connection that holds the write lock from its first statement, committed on success.

        A deferred transaction on a table with FTS triggers reads first; in WAL mode a read that must then
        become a write fails at once ("database is locked") when another writer got in between, without
        waiting out the busy timeout. BEGIN IMMEDIATE waits its turn instead.
        """
        with self.db() as db:
            with db.conn:
                db.execute("BEGIN IMMEDIATE")
                yield db

    # --- exchanges -------------------------------------------------------------------------
    def log_exchange(self, exchange: Exchange) -> int:
        """Log a finished exchange in one write (generation runs); chat uses start_ and finish_exchange."""
        with self.writing() as db:
            return db.table("exchanges").insert(self._exchange_row(exchange)).last_pk

    def start_exchange(self, exchange: Exchange, conversation: SavedConversation | None = None) -> int:
        """Log a request as it is sent (status in_flight, incomplete) and, in the same transaction, the
        conversation with the turn it answers (`exchange.turn`) stamped with the new exchange id."""
        row = {**self._exchange_row(exchange), "status": "in_flight", "incomplete": 1, "pid": os.getpid(),
               "process": self.process, "updated_at": now()}
        with self.writing() as db:
            exchange_id = db.table("exchanges").insert(row).last_pk
            if conversation is not None:
                turns = conversation.transcript
                if 0 <= exchange.turn < len(turns) and turns[exchange.turn].get("exchange_id") is None:
                    turns[exchange.turn]["exchange_id"] = exchange_id
                _save_conversation(db, conversation)
        return exchange_id

    def finish_exchange(self, exchange_id: int, exchange: Exchange,
                        conversation: SavedConversation | None = None) -> None:
        """The reply ended (done, error or stopped): the row gets its reply and metrics, with the conversation."""
        row = self._exchange_row(exchange)
        row.pop("created_at")
        row["updated_at"] = now()
        with self.writing() as db:
            db.table("exchanges").update(exchange_id, row)
            if conversation is not None:
                _save_conversation(db, conversation)

    @staticmethod
    def _exchange_row(exchange: Exchange) -> dict:
        row = asdict(exchange)
        row["request"] = json.dumps(exchange.request, ensure_ascii=False)
        row["request_text"] = exchange.request_text()
        row["tokens_counted"] = int(exchange.tokens_counted)
        row["incomplete"] = int(exchange.incomplete)
        row["status"] = exchange.status or ("error" if exchange.error else "done")
        return row

    def recover_interrupted(self) -> int:
        """Mark the in-flight exchanges of processes that have ended as interrupted; returns how many.

        Run at startup. Rows of a process that still runs (another app on the same database) are left alone.
        """
        with self.db() as db:
            owners = [r[0] for r in db.execute(
                "select distinct process from exchanges where status = 'in_flight' and process is not null")]
        gone = [p for p in owners if p != self.process and is_gone(p)]
        if not gone:
            return 0
        marks = ",".join("?" * len(gone))
        with self.writing() as db:
            rows = list(db.execute(f"select id, conversation_id, turn from exchanges where status = 'in_flight' "
                                   f"and process in ({marks})", gone))
            db.execute(f"update exchanges set status = 'interrupted', incomplete = 1, error = coalesce(error, ?), "
                       f"updated_at = ? where status = 'in_flight' and process in ({marks})",
                       [INTERRUPTED, now(), *gone])
            for exchange_id, conversation_id, turn in rows:
                _mark_turn_interrupted(db, conversation_id, turn, exchange_id)
        return len(rows)

    def rate(self, exchange_id: int, rating: int) -> None:
        with self.writing() as db:
            db.table("exchanges").update(exchange_id, {"rating": rating})

    def exchange(self, exchange_id: int) -> dict:
        with self.db() as db:
            return _decoded(db.table("exchanges").get(exchange_id))

    def exchanges(self, search: str = "", limit: int = 20, conversation_id: str | None = None) -> list[dict]:
        """Most recent first; `search` is full-text over requests and replies."""
        where, args = [], {}
        if conversation_id:
            where.append("conversation_id = :cid")
            args["cid"] = conversation_id
        with self.db() as db:
            table = db.table("exchanges")
            if search.strip():
                rows = table.search(_fts_query(search), where=" and ".join(where) or None, where_args=args,
                                    order_by="id desc", limit=limit)
            else:
                rows = table.rows_where(" and ".join(where) or None, args, order_by="id desc", limit=limit)
            return [_decoded(r) for r in rows]

    # --- conversations ---------------------------------------------------------------------
    def save_conversation(self, conversation_id: str, *, title: str, persona: str, provider: str, model: str,
                          settings: dict, transcript: list[dict], continued_from: str | None = None) -> None:
        with self.writing() as db:
            _save_conversation(db, SavedConversation(conversation_id, title, persona, provider, model, settings,
                                                     transcript, continued_from))

    def conversation(self, conversation_id: str) -> dict | None:
        with self.db() as db:
            rows = list(db.table("conversations").rows_where("id = ?", [conversation_id]))
        return _decoded(rows[0]) if rows else None

    def conversations(self, search: str = "", limit: int = 50) -> list[dict]:
        with self.db() as db:
            table = db.table("conversations")
            columns = ["id", "title", "persona", "model", "updated_at"]
            if search.strip():
                rows = table.search(_fts_query(search), columns=columns, order_by="updated_at desc", limit=limit)
            else:
                rows = table.rows_where(select=",".join(columns), order_by="updated_at desc", limit=limit)
            return list(rows)

    # --- lookup index ----------------------------------------------------------------------
    def index_lookup(self, dataset: str, fingerprint: str, pairs: list[tuple[str, str]]) -> None:
        """(Re)build one dataset's index unless it is already built from the same file contents."""
        with self.writing() as db:
            table = db.table("lookup_examples")
            if table.count_where("dataset = ? and fingerprint = ?", [dataset, fingerprint]):
                return
            db.execute("delete from lookup_examples where dataset = ?", [dataset])
            table.insert_all(
                {"dataset": dataset, "fingerprint": fingerprint, "user_text": u, "reply": r} for u, r in pairs
            )

    def lookup(self, dataset: str, query: str) -> str | None:
        """The reply whose user turn ranks best (BM25) against the query."""
        words = _words(query)
        if not words:
            return None
        with self.db() as db:
            rows = list(db.table("lookup_examples").search(
                " OR ".join(f'"{w}"' for w in words), columns=["reply"],
                where="dataset = :dataset", where_args={"dataset": dataset}, limit=1,
            ))
        return rows[0]["reply"] if rows else None


def _save_conversation(db: Database, conversation: SavedConversation) -> None:
    c = conversation
    row = {
        "id": c.id, "title": c.title[:120], "persona": c.persona, "provider": c.provider, "model": c.model,
        "settings": json.dumps(c.settings, ensure_ascii=False),
        "transcript": json.dumps(c.transcript, ensure_ascii=False),
        "transcript_text": "\n".join(str(t.get("content") or "") for t in c.transcript), "updated_at": now(),
    }
    if db.table("conversations").count_where("id = ?", [c.id]):
        db.table("conversations").update(c.id, row)
    else:
        db.table("conversations").insert({**row, "created_at": row["updated_at"], "continued_from": c.continued_from})


def _mark_turn_interrupted(db: Database, conversation_id: str, turn: int, exchange_id: int) -> None:
    """The reply turn saved when the request was sent says what happened to it, for whoever reopens the chat."""
    rows = list(db.table("conversations").rows_where("id = ?", [conversation_id], select="transcript"))
    if not rows:
        return
    transcript = json.loads(rows[0]["transcript"])
    if 0 <= turn < len(transcript) and transcript[turn].get("exchange_id") == exchange_id:
        transcript[turn].update(error=INTERRUPTED, incomplete=True)
        db.table("conversations").update(conversation_id, {"transcript": json.dumps(transcript, ensure_ascii=False)})


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())[:64]


def _fts_query(text: str) -> str:
    # Every word must match; quoting keeps user punctuation from being read as FTS syntax.
    return " ".join(f'"{w}"' for w in _words(text)) or '""'


def _decoded(row: dict) -> dict:
    row.pop("rowid", None)
    for key in ("request", "settings", "transcript"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row
