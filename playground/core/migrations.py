"""Append-only schema migrations. Never edit one that has shipped: add the next."""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("playground")


@migrations()
def m001_initial(db: Database) -> None:
    db.table("conversations").create(
        {
            "id": str, "title": str, "persona": str, "provider": str, "model": str,
            "settings": str, "transcript": str, "transcript_text": str, "created_at": str, "updated_at": str,
        },
        pk="id",
    )
    db.table("exchanges").create(
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
    db.table("exchanges").create_index(["conversation_id", "turn"])
    db.table("exchanges").create_index(["created_at"])
    db.table("exchanges").enable_fts(["request_text", "reply"], create_triggers=True, tokenize="porter")
    # Index the words said, not the transcript's JSON: its keys ("role", "error", ...) would match every conversation.
    db.table("conversations").enable_fts(["title", "transcript_text"], create_triggers=True, tokenize="porter")
    db.table("lookup_examples").create(
        {"id": int, "dataset": str, "fingerprint": str, "user_text": str, "reply": str}, pk="id"
    )
    db.table("lookup_examples").create_index(["dataset"])
    db.table("lookup_examples").enable_fts(["user_text"], create_triggers=True, tokenize="porter")


@migrations()
def m002_datasets(db: Database) -> None:
    db.table("datasets").create(
        {"id": int, "name": str, "description": str, "created_at": str},
        pk="id",
        not_null={"name", "created_at"},
        defaults={"description": ""},
    )
    db.table("datasets").create_index(["name"], unique=True)
    # messages/tags/source are JSON; deleted_at marks a soft delete so it can be undone.
    # tokens is the gpt-4o-mini count, kept for list totals; stats recount for whichever model is asked.
    db.table("examples").create(
        {
            "id": int, "dataset_id": int, "messages": str, "chosen": str, "rejected": str, "tags": str,
            "excluded": int, "source": str, "tokens": int, "created_at": str, "updated_at": str, "deleted_at": str,
        },
        pk="id",
        foreign_keys=[("dataset_id", "datasets", "id")],
        not_null={"dataset_id", "messages", "created_at", "updated_at"},
        defaults={"tags": "[]", "excluded": 0, "source": "{}", "tokens": 0},
    )
    db.table("examples").create_index(["dataset_id", "deleted_at"])


@migrations()
def m003_ab(db: Database) -> None:
    # One row per A/B round (one message sent to every column); display_order is the JSON list of column
    # indexes shown as A, B, ... (shuffled with `seed` in blind mode); anonymous: names hidden until the vote.
    db.table("ab_rounds").create(
        {"id": str, "comparison_id": str, "number": int, "prompt": str, "blind": int, "anonymous": int,
         "seed": int, "display_order": str, "created_at": str},
        pk="id",
        not_null={"comparison_id", "number", "prompt", "display_order", "created_at"},
    )
    # Each column's reply: its setup, its own conversation and the logged exchange, so a vote is a preference pair.
    db.table("ab_replies").create(
        {"id": int, "round_id": str, "column_index": int, "slot": str, "contestant": str, "model": str,
         "persona": str, "settings": str, "conversation_id": str, "exchange_id": int, "error": str, "score": int},
        pk="id",
        foreign_keys=[("round_id", "ab_rounds", "id"), ("exchange_id", "exchanges", "id")],
        not_null={"round_id", "column_index", "slot", "contestant", "model", "conversation_id"},
    )
    db.table("ab_replies").create_index(["round_id", "column_index"], unique=True)
    db.table("ab_replies").create_index(["persona"])
    # At most one vote per round; winner_column is set for outcome "better" only.
    db.table("ab_votes").create(
        {"id": int, "round_id": str, "outcome": str, "winner_column": int, "reason": str, "created_at": str},
        pk="id",
        foreign_keys=[("round_id", "ab_rounds", "id")],
        not_null={"round_id", "outcome", "created_at"},
        defaults={"reason": ""},
    )
    db.table("ab_votes").create_index(["round_id"], unique=True)
    db.table("ab_votes").create_index(["created_at"])


@migrations()
def m004_templates(db: Database) -> None:
    # Every save of a template or persona file: its full text and the unified diff from the version before.
    db.table("template_versions").create(
        {"id": int, "key": str, "version": int, "content": str, "diff": str, "created_at": str},
        pk="id",
        not_null={"key", "version", "content", "created_at"},
        defaults={"diff": ""},
    )
    db.table("template_versions").create_index(["key", "version"], unique=True)


@migrations()
def m005_finetune(db: Database) -> None:
    # One row per fine-tuning job, keyed by the server's job id; the dataset and split it was made from stay
    # with it, so a fine-tuned model can be traced back. hyperparameters are JSON, as the server reports them.
    db.table("finetune_jobs").create(
        {
            "id": str, "provider": str, "base_model": str, "dataset": str, "split": str, "seed": int,
            "suffix": str, "hyperparameters": str, "status": str, "fine_tuned_model": str, "training_file": str,
            "validation_file": str, "train_examples": int, "validation_examples": int, "billed_tokens": int,
            "estimated_cost_usd": float, "trained_tokens": int, "error": str, "result_file": str,
            "created_at": str, "updated_at": str, "finished_at": str, "polled_at": str,
        },
        pk="id",
        not_null={"provider", "base_model", "status", "created_at"},
        defaults={"hyperparameters": "{}"},
    )
    db.table("finetune_jobs").create_index(["status"])
    db.table("finetune_events").create(
        {"job_id": str, "id": str, "created_at": str, "level": str, "message": str, "type": str, "data": str},
        pk=("job_id", "id"),
        defaults={"data": "{}"},
    )
    db.table("finetune_events").create_index(["job_id", "created_at"])
    # Per-step metrics: from metric events while a job runs, replaced by the result file's rows when it is done.
    db.table("finetune_metrics").create(
        {"job_id": str, "step": int, "train_loss": float, "train_accuracy": float, "valid_loss": float,
         "valid_accuracy": float, "source": str},
        pk=("job_id", "step"),
    )
    db.table("finetune_checkpoints").create(
        {"job_id": str, "id": str, "step": int, "model": str, "metrics": str, "created_at": str},
        pk=("job_id", "id"),
        defaults={"metrics": "{}"},
    )


@migrations()
def m006_exchange_status(db: Database) -> None:
    # An exchange is written when its request is sent (status "in_flight") and updated when the reply ends, so a
    # crash leaves the request behind. `process` names the writer (host:pid:start) so the next start can tell a
    # dead writer's rows ("interrupted") from those of another app still running on the same database file.
    db.table("exchanges").add_column("status", str, not_null_default="done")
    db.table("exchanges").add_column("pid", int)
    db.table("exchanges").add_column("process", str)
    db.table("exchanges").add_column("updated_at", str)
    # Only failed rows change (rewriting every row would re-index the whole log through its FTS triggers).
    db.execute("update exchanges set status = case when error like 'Stopped%' then 'stopped' else 'error' end "
               "where error is not null")
    db.table("exchanges").create_index(["status"])
    # A conversation reopened from History goes on as a new conversation; this names the one it was opened from.
    db.table("conversations").add_column("continued_from", str)


@migrations()
def m007_example_tools(db: Database) -> None:
    # Tool-calling examples: the functions the model may call (OpenAI's `tools`, a JSON list) and OpenAI's
    # parallel_tool_calls flag (null when not set, so an exported line gets back exactly what was imported).
    db.table("examples").add_column("tools", str)
    db.table("examples").add_column("parallel_tool_calls", int)


@migrations()
def m008_judge_verdicts(db: Database) -> None:
    # One row per pair of replies judged by an LLM judge, asked in both orders. contestant_a/b are the two replies
    # in column order; `first` is the verdict with a shown as A, `second` with b shown as A ([[A]]/[[B]]/[[C]] as
    # A/B/C, null when the reply had none). winner is a, b, tie, or null when a reply was unparsable.
    db.table("judge_verdicts").create(
        {
            "id": int, "round_id": str, "column_a": int, "column_b": int, "contestant_a": str, "contestant_b": str,
            "judge_model": str, "rubric": str, "rubric_version": str, "first": str, "second": str,
            "first_reply": str, "second_reply": str, "winner": str, "position_bias": int, "unparsable": int,
            "answer_a_chars": int, "answer_b_chars": int, "prompt_tokens": int, "completion_tokens": int,
            "cost_usd": float, "error": str, "created_at": str,
        },
        pk="id",
        foreign_keys=[("round_id", "ab_rounds", "id")],
        not_null={"round_id", "column_a", "column_b", "judge_model", "rubric_version", "created_at"},
        defaults={"position_bias": 0, "unparsable": 0, "first_reply": "", "second_reply": ""},
    )
    db.table("judge_verdicts").create_index(["round_id", "judge_model", "rubric_version"])
