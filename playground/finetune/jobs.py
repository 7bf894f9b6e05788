"""Fine-tuning jobs from a stored dataset: check, estimate, upload, start, follow, cancel.

A job is prepared from a dataset, a split and a base model; it is refused while validation finds errors.
Its train and validation files are written in the format the base model takes, uploaded to the endpoint that
serves the model (OpenAI or any compatible fine-tuning service), and the job is stored with where it came
from. Following a job stores its status, events, per-step metrics (from metric events while it runs, from the
result file once it is done) and checkpoints; a succeeded job's model joins the model pickers.
"""

import base64
import binascii
import csv
import io
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..core.store import new_id, now
from ..datasets.examples import Example
from ..datasets.formats.writers import unfit_examples, write_examples
from ..datasets.splits import DEFAULT_RATIOS, split_examples
from ..datasets.stats import CostEstimate, DatasetStats, dataset_stats, training_costs
from ..datasets.store import iter_examples
from ..datasets.validation import MIN_EXAMPLES, Finding, has_errors, validate_examples, validate_splits
from ..providers import ProviderError
from ..providers.jobs import OPENAI_HOST, FineTuningAPI, RemoteJob
from ..providers.openai import OpenAIProvider
from . import store as jobs_db
from .store import CheckpointRecord, EventRecord, JobRecord, MetricPoint


def export_advice(dataset: str = "NAME") -> str:
    """How to train elsewhere when this endpoint has no fine-tuning."""
    return (f"To export it: `python -m playground dataset export {dataset} --format trl-messages --split {DEFAULT_RATIOS} "
            "--out DIR` (TRL, Unsloth; sharegpt for Axolotl or LLaMA-Factory).")


def on_openai(provider: OpenAIProvider) -> bool:
    return urlparse(str(provider.config.base_url)).hostname == OPENAI_HOST


# --- does the endpoint fine-tune? ---------------------------------------------------------------------

# A probe that fails with one of these means the endpoint has no fine-tuning API (or refuses it): the answer stands.
# Others (unreachable, a bad key, a server error) say nothing either way, and are asked again next time.
NO_FINETUNING_KINDS = ("no_finetuning", "not_found", "bad_request", "permission")


@dataclass(frozen=True)
class Availability:
    """Whether an endpoint offers fine-tuning; `offered` is None when the probe could not tell."""

    endpoint: str  # "name (base URL)", as messages name it
    offered: bool | None
    message: str


def probe_fine_tuning(provider: OpenAIProvider) -> Availability:
    """Ask the endpoint for one job (GET fine_tuning/jobs?limit=1): cheap, changes nothing, and answered only by
    a server with the fine-tuning API."""
    where = f"{provider.name} ({provider.config.base_url})"
    try:
        FineTuningAPI(provider).list_jobs(limit=1)
    except ProviderError as e:
        if e.kind in NO_FINETUNING_KINDS:
            return Availability(where, False, str(e))
        return Availability(where, None, f"Could not tell whether {where} offers fine-tuning: {e}")
    return Availability(where, True, f"{where} offers fine-tuning.")


class AvailabilityCache:
    """Probe answers per endpoint (name and base URL), so each is asked once however often the tab asks.

    Held by whoever builds the Fine-tune tab, not by this module: it lives as long as the app does."""

    def __init__(self):
        self._known: dict[tuple[str, str], Availability] = {}
        self._lock = threading.Lock()

    def check(self, provider: OpenAIProvider) -> Availability:
        key = (provider.name, str(provider.config.base_url))
        with self._lock:
            known = self._known.get(key)
        if known is None:
            known = probe_fine_tuning(provider)
            if known.offered is not None:
                with self._lock:
                    self._known[key] = known
        return known


def availability(services: Services, model: str, cache: AvailabilityCache) -> Availability | None:
    """Whether the endpoint serving `model` (provider:model) fine-tunes; None when no endpoint serves it."""
    if not (model or "").strip():
        return None
    try:
        provider, _ = services.registry.resolve(model.strip())
    except PlaygroundError:
        return None
    return cache.check(provider) if isinstance(provider, OpenAIProvider) else None


class FineTuneSettings(BaseModel):
    """What a job is made from; None hyperparameters are left to the server ("auto")."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, description="The stored dataset to train on.")
    model: str = Field(min_length=1, description="Base model, as provider:model or a model name.")
    split: str = Field(DEFAULT_RATIOS, description="train/validation(/test) ratios; the test part is not uploaded.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1,
                             description="Shuffles the split (0 when unset) and seeds the job.")
    epochs: int | None = Field(None, ge=1, le=50, description="Passes over the training file; unset = auto.")
    batch_size: int | None = Field(None, ge=1, le=256, description="Examples per step; unset = auto.")
    learning_rate_multiplier: float | None = Field(None, gt=0, le=10,
                                                   description="Scales the base learning rate; unset = auto.")
    suffix: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]*$",
                               description="Up to 64 letters, digits, '-', '_' or '.', put in the model's name.")

    def hyperparameters(self) -> dict:
        return {"n_epochs": self.epochs, "batch_size": self.batch_size,
                "learning_rate_multiplier": self.learning_rate_multiplier}


SETTING_LABELS = {"dataset": "Dataset", "model": "Base model", "split": "Split", "seed": "Seed", "epochs": "Epochs",
                  "batch_size": "Batch size", "learning_rate_multiplier": "LR multiplier", "suffix": "Suffix"}


def make_settings(**values) -> FineTuneSettings:
    """FineTuneSettings, or a PlaygroundError naming the first bad field in words."""
    try:
        return FineTuneSettings(**values)
    except ValidationError as e:
        first = e.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        hint = f" ({FineTuneSettings.model_fields[name].description})" if name in FineTuneSettings.model_fields else ""
        raise PlaygroundError(f"{SETTING_LABELS.get(name, name)}: {first['msg']}{hint}.") from None


@dataclass
class Plan:
    """A job before it starts: the split, what validation found, and what training would cost."""

    settings: FineTuneSettings
    provider: OpenAIProvider
    base_model: str
    format: str
    splits: dict[str, list[Example]]
    findings: list[Finding]
    stats: DatasetStats
    costs: list[CostEstimate] = field(default_factory=list)

    @property
    def priced_costs(self) -> list[CostEstimate]:
        """The other base models' prices, shown beside this one's only when this one's is known: a local model's
        plan is not priced with OpenAI's table."""
        if self.stats.cost.usd is None:
            return []
        return [c for c in self.costs if c.usd is not None]

    @property
    def ok(self) -> bool:
        return not has_errors(self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def summary(self) -> list[str]:
        sizes = ", ".join(f"{name} {len(part)}" for name, part in self.splits.items())
        cost = self.stats.cost
        price = f"estimated {usd(cost.usd)}" if cost.usd is not None else "no training price known for this model"
        auto = ("" if self.settings.epochs is not None else " (auto: OpenAI's default for this size)"
                if on_openai(self.provider) else " (auto: the endpoint decides; counted with OpenAI's default)")
        epochs = f"{plural(cost.epochs, 'epoch')}{auto}"
        warnings = len(self.findings) - len(self.errors)
        verdict = (f"{plural(len(self.errors), 'error')}: fix {'it' if len(self.errors) == 1 else 'them'} before training"
                   if self.errors else "ready to train" + (f" ({plural(warnings, 'warning')} to judge)" if warnings else ""))
        return [
            f"{self.settings.dataset}: {plural(sum(len(p) for p in self.splits.values()), 'example')} → {sizes} "
            f"(split {self.settings.split}, seed {self.settings.seed or 0})",
            f"{self.base_model} on {self.provider.name}: {epochs}, {cost.billed_tokens:,} billed tokens, {price}",
            f"validation: {verdict}",
        ]


def usd(amount: float | None) -> str:
    """Dollars as a person reads them; a cent's fraction shows as under a cent, not as a free $0.00."""
    if amount is None:
        return ""
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else "under $0.01"


class NotReady(PlaygroundError):
    """Validation found errors: nothing was uploaded."""

    def __init__(self, plan: Plan):
        self.plan = plan
        errors = plan.errors
        super().__init__(f"Not started: validation found {plural(len(errors), 'error')} "
                         f"(first: {errors[0]}). Fix them in the Datasets tab, then try again.")


# --- preparing and starting ----------------------------------------------------------------------------


def prepare(services: Services, settings: FineTuneSettings) -> Plan:
    """Split, validate and estimate; sends nothing."""
    provider, base = services.registry.resolve(settings.model)
    if not isinstance(provider, OpenAIProvider):
        raise PlaygroundError(f"'{settings.model}' cannot be fine-tuned: pick a base model served by OpenAI or an "
                              "OpenAI-compatible endpoint.")
    examples = list(iter_examples(services.store, settings.dataset, include_excluded=False))
    splits = split_examples(examples, settings.split, settings.seed or 0)
    train, validation = splits["train"], splits.get("validation", [])
    fmt = "openai-completion" if provider.is_completion_model(base) else "openai-chat"
    findings = validate_examples(examples, base) + validate_splits(splits)
    findings += [Finding("error", "unfit", str(u), example_id=u.example.id)
                 for u in unfit_examples(train + validation, fmt)]
    if examples and len(train) < MIN_EXAMPLES:
        findings.append(Finding("error", "too_few_training_examples",
                                f"the training split has {plural(len(train), 'example')} and fine-tuning needs at least "
                                f"{MIN_EXAMPLES}: add examples or give training a larger share of the split."))
    stats = dataset_stats(train, base, settings.epochs)
    return Plan(settings, provider, base, fmt, splits, findings, stats, training_costs(train, settings.epochs))


def start(services: Services, settings: FineTuneSettings) -> JobRecord:
    """Validate, write the files, upload them and create the job; refused (NotReady) on validation errors."""
    plan = prepare(services, settings)
    if not plan.ok:
        raise NotReady(plan)
    api = FineTuningAPI(plan.provider)
    folder = work_dir(services) / new_id()
    train, validation = plan.splits["train"], plan.splits.get("validation", [])
    write_examples(train, folder / "train.jsonl", plan.format)
    training_file = api.upload(folder / "train.jsonl")
    validation_file = None
    if validation:
        write_examples(validation, folder / "validation.jsonl", plan.format)
        validation_file = api.upload(folder / "validation.jsonl")
    job = api.create(plan.base_model, training_file, validation_file, hyperparameters=settings.hyperparameters(),
                     suffix=settings.suffix or None, seed=settings.seed)
    record = JobRecord(
        id=job.id, provider=plan.provider.name, base_model=plan.base_model, status=job.status,
        created_at=_iso(job.created_at) or now(), dataset=settings.dataset, split=settings.split, seed=settings.seed,
        suffix=settings.suffix or None, hyperparameters=job.hyperparameters or settings.hyperparameters(),
        training_file=training_file, validation_file=validation_file, train_examples=len(train),
        validation_examples=len(validation), billed_tokens=plan.stats.cost.billed_tokens,
        estimated_cost_usd=plan.stats.cost.usd, polled_at=now())
    jobs_db.save_job(services.store, record)
    return record


def work_dir(services: Services) -> Path:
    """Where uploaded files are kept, one folder per job: what was trained on can always be looked at."""
    return services.home / "finetune"


# --- following a job -----------------------------------------------------------------------------------


def refresh(services: Services, job_id: str) -> JobRecord:
    """Ask the server about a job and store what is new: status, events, metrics, checkpoints, result file."""
    record = jobs_db.get_job(services.store, job_id)
    api = FineTuningAPI(_provider(services, record))
    job = api.retrieve(job_id)
    events = [EventRecord(e.id, _iso(e.created_at), e.level, e.message, e.type, e.data)
              for e in api.events(job_id, known=jobs_db.known_event_ids(services.store, job_id))]
    jobs_db.add_events(services.store, job_id, events)
    if record.result_file is None:
        jobs_db.save_metrics(services.store, job_id, metric_points(events), source="event")
    if job.status not in ("validating_files", "queued"):
        _store_checkpoints(services, api, job_id)
    changes = _changes(job)
    if job.status == "succeeded" and job.result_files and record.result_file is None:
        points = parse_result_csv(api.file_text(job.result_files[0]))
        if points:
            jobs_db.save_metrics(services.store, job_id, points, source="result", replace=True)
        changes["result_file"] = job.result_files[0]
    return jobs_db.update_job(services.store, job_id, **changes)


def refresh_active(services: Services, min_interval: float = 0.0, clock=None) -> dict[str, str]:
    """Refresh every unfinished job not polled in the last `min_interval` seconds; returns problems by job id.

    After a restart this is what picks up jobs that were running: they are stored, the server still has them.
    """
    current = (clock or _utcnow)()
    problems = {}
    for record in jobs_db.active_jobs(services.store):
        if record.polled_at and (current - datetime.fromisoformat(record.polled_at)).total_seconds() < min_interval:
            continue
        try:
            refresh(services, record.id)
        except PlaygroundError as e:
            problems[record.id] = str(e)
    return problems


def cancel(services: Services, job_id: str) -> JobRecord:
    record = jobs_db.get_job(services.store, job_id)
    if record.finished:
        raise PlaygroundError(f"Job {job_id} has already {record.status}: there is nothing to cancel.")
    api = FineTuningAPI(_provider(services, record))
    api.cancel(job_id)
    return refresh(services, job_id)


@dataclass(frozen=True)
class JobView:
    record: JobRecord
    events: list[EventRecord]
    metrics: list[MetricPoint]
    checkpoints: list[CheckpointRecord]


def view(services: Services, job_id: str) -> JobView:
    store = services.store
    return JobView(jobs_db.get_job(store, job_id), jobs_db.job_events(store, job_id),
                   jobs_db.job_metrics(store, job_id), jobs_db.job_checkpoints(store, job_id))


# --- metrics -------------------------------------------------------------------------------------------


def metric_points(events: list[EventRecord]) -> list[MetricPoint]:
    """One point per metric event, from its data (step, train_loss, train_mean_token_accuracy, valid_...)."""
    points = []
    for event in events:
        data = event.data or {}
        if event.type == "metrics" or ("step" in data and "train_loss" in data):
            step = _number(data.get("step"))
            if step is not None:
                points.append(MetricPoint(
                    int(step), _number(data.get("train_loss")), _number(data.get("train_mean_token_accuracy")),
                    _number(data.get("valid_loss")), _number(data.get("valid_mean_token_accuracy"))))
    return points


def parse_result_csv(text: str) -> list[MetricPoint]:
    """The result file's rows. OpenAI has served this file base64-encoded; that is decoded first."""
    text = text.strip()
    if text and not text.lower().startswith("step"):
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            return []
    points = []
    for row in csv.DictReader(io.StringIO(text)):
        step = _number(row.get("step"))
        if step is None:
            continue
        points.append(MetricPoint(
            int(step), _number(row.get("train_loss")),
            _number(row.get("train_accuracy", row.get("train_mean_token_accuracy"))),
            _number(row.get("valid_loss")),
            _number(row.get("valid_mean_token_accuracy", row.get("valid_accuracy")))))
    return points


def _number(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- helpers -------------------------------------------------------------------------------------------


def _provider(services: Services, record: JobRecord) -> OpenAIProvider:
    for provider in services.registry.providers():
        if provider.name == record.provider and isinstance(provider, OpenAIProvider):
            return provider
    raise PlaygroundError(f"Job {record.id} runs on the endpoint '{record.provider}', which is not configured now: "
                          "add it back (providers.json, or OPENAI_API_KEY for openai) to follow the job.")


def _store_checkpoints(services: Services, api: FineTuningAPI, job_id: str) -> None:
    try:
        checkpoints = api.checkpoints(job_id)
    except ProviderError as e:
        if e.kind in ("no_finetuning", "not_found"):  # a compatible server without checkpoints
            return
        raise
    jobs_db.save_checkpoints(services.store, job_id, [
        CheckpointRecord(c.id, c.step, c.model, _iso(c.created_at), c.metrics) for c in checkpoints])


def _changes(job: RemoteJob) -> dict:
    return {"status": job.status, "fine_tuned_model": job.fine_tuned_model, "error": job.error,
            "trained_tokens": job.trained_tokens, "hyperparameters": job.hyperparameters,
            "finished_at": _iso(job.finished_at), "polled_at": now()}


def _iso(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def _utcnow() -> datetime:
    return datetime.now(UTC)
