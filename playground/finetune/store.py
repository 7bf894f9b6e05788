"""Fine-tuning jobs, their events, metrics and checkpoints in the SQLite store (tables from m005_finetune).

Like the dataset store, every function takes the Store and opens its own connection: Gradio handlers run in
worker threads. Kept here so the Fine-tune tab, the CLI and the model pickers survive a restart.
"""

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields

from ..core.errors import PlaygroundError
from ..core.store import Store, now
from ..providers.jobs import TERMINAL_STATUSES


class JobNotFound(PlaygroundError):
    def __init__(self, job_id: str):
        super().__init__(f"There is no fine-tuning job '{job_id}' here: see `finetune list` or the Fine-tune tab.")


@dataclass(frozen=True)
class JobRecord:
    id: str
    provider: str
    base_model: str
    status: str
    created_at: str
    dataset: str = ""
    split: str = ""
    seed: int | None = None
    suffix: str | None = None
    hyperparameters: dict = field(default_factory=dict)
    fine_tuned_model: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    train_examples: int = 0
    validation_examples: int = 0
    billed_tokens: int | None = None
    estimated_cost_usd: float | None = None
    trained_tokens: int | None = None
    error: str | None = None
    result_file: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    polled_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class EventRecord:
    id: str
    created_at: str
    level: str
    message: str
    type: str | None = None
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MetricPoint:
    step: int
    train_loss: float | None = None
    train_accuracy: float | None = None
    valid_loss: float | None = None
    valid_accuracy: float | None = None


@dataclass(frozen=True)
class CheckpointRecord:
    id: str
    step: int
    model: str
    created_at: str
    metrics: dict = field(default_factory=dict)


_JOB_FIELDS = {f.name for f in fields(JobRecord)}


# --- jobs ----------------------------------------------------------------------------------------------


def save_job(store: Store, record: JobRecord) -> None:
    row = asdict(record)
    row["hyperparameters"] = json.dumps(record.hyperparameters)
    row["updated_at"] = now()
    with store.writing() as db:
        db.table("finetune_jobs").upsert(row, pk="id")


def update_job(store: Store, job_id: str, **changes) -> JobRecord:
    unknown = set(changes) - _JOB_FIELDS
    if unknown:
        raise ValueError(f"not job fields: {sorted(unknown)}")
    if "hyperparameters" in changes:
        changes["hyperparameters"] = json.dumps(changes["hyperparameters"])
    with store.writing() as db:
        if not db.table("finetune_jobs").count_where("id = ?", [job_id]):
            raise JobNotFound(job_id)
        db.table("finetune_jobs").update(job_id, {**changes, "updated_at": now()})
    return get_job(store, job_id)


def get_job(store: Store, job_id: str) -> JobRecord:
    with store.db() as db:
        rows = list(db.table("finetune_jobs").rows_where("id = ?", [job_id]))
    if not rows:
        raise JobNotFound(job_id)
    return _job(rows[0])


def list_jobs(store: Store, limit: int = 100) -> list[JobRecord]:
    """Newest first."""
    with store.db() as db:
        return [_job(r) for r in db.table("finetune_jobs").rows_where(order_by="created_at desc, rowid desc", limit=limit)]


def active_jobs(store: Store) -> list[JobRecord]:
    """Jobs still validating, queued or running: the ones worth asking the server about."""
    marks = ", ".join("?" * len(TERMINAL_STATUSES))
    with store.db() as db:
        return [_job(r) for r in db.table("finetune_jobs").rows_where(f"status not in ({marks})", list(TERMINAL_STATUSES),
                                                                 order_by="created_at")]


def fine_tuned_models(store: Store) -> dict[str, dict[str, str]]:
    """{provider: {fine-tuned model: where it came from}} for every succeeded job, for the model pickers."""
    with store.db() as db:
        rows = db.query("select id, provider, dataset, fine_tuned_model from finetune_jobs "
                        "where status = 'succeeded' and fine_tuned_model is not null order by created_at")
        found: dict[str, dict[str, str]] = {}
        for row in rows:
            origin = f"from dataset {row['dataset']}, job {row['id']}" if row["dataset"] else f"job {row['id']}"
            found.setdefault(row["provider"], {})[row["fine_tuned_model"]] = origin
    return found


def _job(row: dict) -> JobRecord:
    row = {k: v for k, v in row.items() if k in _JOB_FIELDS}
    row["hyperparameters"] = json.loads(row.get("hyperparameters") or "{}")
    for key in ("train_examples", "validation_examples"):
        row[key] = row.get(key) or 0
    return JobRecord(**row)


# --- events, metrics, checkpoints ----------------------------------------------------------------------


def known_event_ids(store: Store, job_id: str) -> set[str]:
    with store.db() as db:
        return {r["id"] for r in db.query("select id from finetune_events where job_id = ?", [job_id])}


def add_events(store: Store, job_id: str, events: Iterable[EventRecord]) -> None:
    rows = [{**asdict(e), "job_id": job_id, "data": json.dumps(e.data)} for e in events]
    if rows:
        with store.writing() as db:
            db.table("finetune_events").upsert_all(rows, pk=("job_id", "id"))


def job_events(store: Store, job_id: str, limit: int = 500) -> list[EventRecord]:
    """Newest first."""
    with store.db() as db:
        rows = db.table("finetune_events").rows_where("job_id = ?", [job_id], order_by="created_at desc, id desc",
                                                limit=limit)
        return [EventRecord(r["id"], r["created_at"], r["level"], r["message"], r["type"],
                            json.loads(r["data"] or "{}")) for r in rows]


def save_metrics(store: Store, job_id: str, points: Iterable[MetricPoint], source: str, replace: bool = False) -> None:
    """Add (or, with replace, swap in) a job's per-step metrics; a step seen again is overwritten."""
    rows = [{**asdict(p), "job_id": job_id, "source": source} for p in points]
    with store.writing() as db:
        if replace:
            db.execute("delete from finetune_metrics where job_id = ?", [job_id])
        if rows:
            db.table("finetune_metrics").upsert_all(rows, pk=("job_id", "step"))


def job_metrics(store: Store, job_id: str) -> list[MetricPoint]:
    with store.db() as db:
        rows = db.table("finetune_metrics").rows_where("job_id = ?", [job_id], order_by="step")
        return [MetricPoint(r["step"], r["train_loss"], r["train_accuracy"], r["valid_loss"], r["valid_accuracy"])
                for r in rows]


def save_checkpoints(store: Store, job_id: str, checkpoints: Iterable[CheckpointRecord]) -> None:
    rows = [{**asdict(c), "job_id": job_id, "metrics": json.dumps(c.metrics)} for c in checkpoints]
    if rows:
        with store.writing() as db:
            db.table("finetune_checkpoints").upsert_all(rows, pk=("job_id", "id"))


def job_checkpoints(store: Store, job_id: str) -> list[CheckpointRecord]:
    with store.db() as db:
        rows = db.table("finetune_checkpoints").rows_where("job_id = ?", [job_id], order_by="step")
        return [CheckpointRecord(r["id"], r["step"], r["model"], r["created_at"], json.loads(r["metrics"] or "{}"))
                for r in rows]
