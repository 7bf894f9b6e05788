"""Append-only schema migrations. Never edit one that has shipped: add the next."""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("playground")


@migrations()
def m001_initial(db: Database) -> None:
    db["conversations"].create(
        {
            "id": str, "title": str, "persona": str, "provider": str, "model": str,
            "settings": str, "transcript": str, "transcript_text": str, "created_at": str, "updated_at": str,
        },
        pk="id",
    )
    db["exchanges"].create(
        {
            "id": int, "conversation_id": str, "turn": int, "persona": str, "provider": str, "model": str,
            "mode": str, "request": str, "request_text": str, "reply": str, "finish_reason": str,
            "prompt_tokens": int, "completion_tokens": int, "tokens_counted": int, "cost_usd": float,
            "ttft_ms": float, "duration_ms": float, "error": str, "incomplete": int, "rating": int,
            "created_at": str,
        },
        pk="id",
        not_null={"conversation_id", "model", "request", "created_at"},
        defaults={"reply": "", "incomplete": 0, "rating": 0, "tokens_counted": 0},
    )
    db["exchanges"].create_index(["conversation_id", "turn"])
    db["exchanges"].create_index(["created_at"])
    db["exchanges"].enable_fts(["request_text", "reply"], create_triggers=True, tokenize="porter")
    # Index the words said, not the transcript's JSON: its keys ("role", "error", ...) would match every conversation.
    db["conversations"].enable_fts(["title", "transcript_text"], create_triggers=True, tokenize="porter")
    db["lookup_examples"].create(
        {"id": int, "dataset": str, "fingerprint": str, "user_text": str, "reply": str}, pk="id"
    )
    db["lookup_examples"].create_index(["dataset"])
    db["lookup_examples"].enable_fts(["user_text"], create_triggers=True, tokenize="porter")


@migrations()
def m002_datasets(db: Database) -> None:
    db["datasets"].create(
        {"id": int, "name": str, "description": str, "created_at": str},
        pk="id",
        not_null={"name", "created_at"},
        defaults={"description": ""},
    )
    db["datasets"].create_index(["name"], unique=True)
    # messages/tags/source are JSON; deleted_at marks a soft delete so it can be undone.
    # tokens is the gpt-4o-mini count, kept for list totals; stats recount for whichever model is asked.
    db["examples"].create(
        {
            "id": int, "dataset_id": int, "messages": str, "chosen": str, "rejected": str, "tags": str,
            "excluded": int, "source": str, "tokens": int, "created_at": str, "updated_at": str, "deleted_at": str,
        },
        pk="id",
        foreign_keys=[("dataset_id", "datasets", "id")],
        not_null={"dataset_id", "messages", "created_at", "updated_at"},
        defaults={"tags": "[]", "excluded": 0, "source": "{}", "tokens": 0},
    )
    db["examples"].create_index(["dataset_id", "deleted_at"])
