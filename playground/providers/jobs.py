"""The fine-tuning API of an OpenAI-compatible endpoint, through the same provider's `openai` client.

Files are uploaded with purpose "fine-tune"; jobs are created, read, listed and cancelled; their events,
checkpoints and result file (a CSV of per-step metrics) are read back. SDK objects are turned into plain
dataclasses here, so nothing above this module sees an `openai` type. Errors become ProviderError, with a
plain answer for the common case of an account (or a server) without fine-tuning.
"""

from collections.abc import Container
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import openai

from . import ProviderError
from .openai import OpenAIProvider, _server_message

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")

NO_ACCESS_ADVICE = ("this account has no fine-tuning access (OpenAI's self-serve fine-tuning is closing to new users): "
                    "export for TRL / Unsloth / Axolotl instead")
# Any other endpoint: said of that endpoint, never of OpenAI.
ENDPOINT_ADVICE = "no fine-tuning access at this endpoint: export for TRL / Unsloth / Axolotl instead"
OPENAI_HOST = "api.openai.com"


@dataclass(frozen=True)
class RemoteJob:
    """A fine-tuning job as the server reports it; times are Unix seconds."""

    id: str
    status: str
    model: str
    created_at: int
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    estimated_finish: int | None = None
    error: str | None = None
    trained_tokens: int | None = None
    training_file: str | None = None
    validation_file: str | None = None
    result_files: tuple[str, ...] = ()
    hyperparameters: dict = field(default_factory=dict)
    seed: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class RemoteEvent:
    id: str
    created_at: int
    level: str
    message: str
    type: str | None = None
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteCheckpoint:
    id: str
    step: int
    model: str
    created_at: int
    metrics: dict = field(default_factory=dict)


class FineTuningAPI:
    """One endpoint's fine-tuning calls. Every method raises ProviderError, never an SDK error."""

    def __init__(self, provider: OpenAIProvider):
        self.provider = provider
        self.client = provider.client

    def upload(self, path: Path) -> str:
        """Upload a JSONL training or validation file; returns its file id."""
        path = Path(path)
        try:
            created = self.client.files.create(file=(path.name, path.read_bytes()), purpose="fine-tune")
        except openai.OpenAIError as e:
            raise self._explain(e) from None
        return created.id

    def create(self, model: str, training_file: str, validation_file: str | None = None, *,
               hyperparameters: dict | None = None, suffix: str | None = None, seed: int | None = None) -> RemoteJob:
        """Start a supervised job; hyperparameters left out (or None) are the server's "auto"."""
        chosen = {k: v for k, v in (hyperparameters or {}).items() if v is not None}
        kwargs: dict[str, Any] = {"model": model, "training_file": training_file,
                  "method": {"type": "supervised", "supervised": {"hyperparameters": chosen}}}
        if validation_file:
            kwargs["validation_file"] = validation_file
        if suffix:
            kwargs["suffix"] = suffix
        if seed is not None:
            kwargs["seed"] = seed
        try:
            return self._job(self.client.fine_tuning.jobs.create(**kwargs))
        except openai.OpenAIError as e:
            raise self._explain(e) from None

    def retrieve(self, job_id: str) -> RemoteJob:
        try:
            return self._job(self.client.fine_tuning.jobs.retrieve(job_id))
        except openai.OpenAIError as e:
            raise self._explain(e, job_id) from None

    def list_jobs(self, limit: int = 20) -> list[RemoteJob]:
        """The most recent jobs, newest first (one page)."""
        try:
            return [self._job(j) for j in self.client.fine_tuning.jobs.list(limit=limit).data]
        except openai.OpenAIError as e:
            raise self._explain(e) from None

    def cancel(self, job_id: str) -> RemoteJob:
        try:
            return self._job(self.client.fine_tuning.jobs.cancel(job_id))
        except openai.OpenAIError as e:
            raise self._explain(e, job_id) from None

    def events(self, job_id: str, known: Container[str] = (), page_size: int = 100) -> list[RemoteEvent]:
        """New events, newest first: pages are read until an event already known turns up.

        A long job has thousands of metric events; reading only what is new keeps each poll cheap.
        """
        found = []
        try:
            for event in self.client.fine_tuning.jobs.list_events(job_id, limit=page_size):
                if event.id in known:
                    break
                found.append(RemoteEvent(event.id, event.created_at, event.level, self.provider.redact(event.message),
                                         event.type, dict(event.data) if isinstance(event.data, dict) else {}))
        except openai.OpenAIError as e:
            raise self._explain(e, job_id) from None
        return found

    def checkpoints(self, job_id: str) -> list[RemoteCheckpoint]:
        try:
            listed = list(self.client.fine_tuning.jobs.checkpoints.list(job_id, limit=100))
        except openai.OpenAIError as e:
            raise self._explain(e, job_id) from None
        return [RemoteCheckpoint(c.id, c.step_number, c.fine_tuned_model_checkpoint, c.created_at,
                                 c.metrics.model_dump(exclude_none=True)) for c in listed]

    def file_text(self, file_id: str) -> str:
        """A file's content, e.g. a job's result CSV."""
        try:
            return self.client.files.content(file_id).read().decode("utf-8-sig")
        except openai.OpenAIError as e:
            raise self._explain(e, file_id) from None

    def _job(self, job) -> RemoteJob:
        """The job, its error text redacted: it is the server's words, shown and stored like an error."""
        remote = _job(job)
        return replace(remote, error=self.provider.redact(remote.error)) if remote.error else remote

    def _explain(self, e: openai.OpenAIError, subject: str | None = None) -> ProviderError:
        where = f"{self.provider.name} ({self.provider.config.base_url})"
        openai_host = urlparse(str(self.provider.config.base_url)).hostname == OPENAI_HOST
        if isinstance(e, openai.PermissionDeniedError):
            if openai_host:
                return self.provider.error("no_finetuning", f"{where} refused fine-tuning (403): {NO_ACCESS_ADVICE}.",
                                           403)
            return self.provider.error("no_finetuning", f"{where} refused fine-tuning (403: {_server_message(e)}): "
                                       f"{ENDPOINT_ADVICE}.", 403)
        if isinstance(e, openai.NotFoundError):
            if subject and subject in _server_message(e):
                return self.provider.error("not_found", f"{where} has no '{subject}' (404): it may belong to "
                                           "another account or endpoint.", 404)
            advice = NO_ACCESS_ADVICE if openai_host else ENDPOINT_ADVICE
            return self.provider.error("no_finetuning", f"{where} offers no fine-tuning API (404): {advice}.", 404)
        if isinstance(e, openai.BadRequestError) and not openai_host and not isinstance(e.body, dict):
            # A bare body ("bad json") is not an OpenAI error object: the server does not speak this API at all.
            said = " ".join((e.response.text or _server_message(e)).split())[:80]
            return self.provider.error("no_finetuning", f"{where} answered a fine-tuning request with a bare 400 "
                                       f"({said!r}), not with a fine-tuning API's error: {ENDPOINT_ADVICE}.", 400)
        return self.provider._explain(e, model=None)


def _job(job) -> RemoteJob:
    hyper = job.hyperparameters.model_dump(exclude_none=True) if job.hyperparameters else {}
    method = getattr(job, "method", None)
    supervised = getattr(method, "supervised", None) if method else None
    if supervised is not None and supervised.hyperparameters is not None:
        hyper = {**hyper, **supervised.hyperparameters.model_dump(exclude_none=True)}
    error = job.error.message if job.error and job.error.message else None
    return RemoteJob(
        id=job.id, status=job.status, model=job.model, created_at=job.created_at,
        fine_tuned_model=job.fine_tuned_model, finished_at=job.finished_at,
        estimated_finish=getattr(job, "estimated_finish", None), error=error, trained_tokens=job.trained_tokens,
        training_file=job.training_file, validation_file=job.validation_file,
        result_files=tuple(job.result_files or ()), hyperparameters=hyper, seed=job.seed,
    )
