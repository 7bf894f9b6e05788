"""The loopback OpenAI server of tests/openai_server.py, plus the Files and fine-tuning APIs.

Standard library only. ``FakeFineTuning`` is a ``FakeOpenAI`` (chat, completions, models and its fault models
all work as there) that also serves:

* ``POST /v1/files`` (multipart upload, purpose ``fine-tune``), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``;
* ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs`` (newest first, ``limit``/``after``),
  ``GET /v1/fine_tuning/jobs/{id}``, ``POST /v1/fine_tuning/jobs/{id}/cancel``,
  ``GET /v1/fine_tuning/jobs/{id}/events`` (newest first, cursor ``after``), ``GET .../checkpoints``.

A job moves one stage on every retrieve (``advance_on_retrieve``; or call ``advance(job_id)``):
validating_files → queued (or failed, when a file is bad) → running → one training step per retrieve, each
with a ``metrics`` event → succeeded, with the fine-tuned model ``ft:{base}:{org}:{suffix}:{id}`` added to
``/v1/models`` (so it is chat-able), a result CSV in ``result_files`` and a checkpoint per epoch.

A file is bad when a line is not a JSON object in the base model's format (messages with an assistant turn;
prompt/completion for davinci-002 and babbage-002), when it has fewer than 10 examples, or when it contains
``blocked_phrase`` (the moderation failure OpenAI reports). ``finetuning_access = False`` answers every
Files and fine-tuning call with 403, as for an account without fine-tuning.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.openai_server import FakeOpenAI, _error_body, _Handler

TUNABLE_MODELS = ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-4o", "gpt-4o-2024-08-06", "gpt-4.1-mini",
                  "gpt-3.5-turbo", "davinci-002", "babbage-002")
COMPLETION_BASES = ("davinci-002", "babbage-002")
MIN_EXAMPLES = 10
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
AUTO_VALUES = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}  # what "auto" settles on here
NO_ACCESS = ("You have insufficient permissions for this operation: fine-tuning is not available to this "
             "organization.")
BLOCKED = ("The job failed due to an unsafe training file. This training file was blocked by our moderation "
           "system because it contains too many examples that violate OpenAI's usage policies.")


class _JobsHandler(_Handler):
    def _dispatch(self) -> None:
        # The base handler reads the body as JSON; an upload is multipart, so keep the raw bytes for it.
        length = int(self.headers.get("Content-Length") or 0)
        self.raw_body = self.rfile.read(length) if length > 0 else b""
        real, self.rfile = self.rfile, io.BytesIO(self.raw_body)
        try:
            super()._dispatch()
        finally:
            self.rfile = real

    def _route(self, body: Any, had_body: bool) -> None:
        fake: FakeFineTuning = self.server.fake  # type: ignore[assignment]
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        if not (path.startswith("/v1/files") or path.startswith("/v1/fine_tuning")):
            return super()._route(body, had_body)
        if fake.api_key is not None and self.headers.get("Authorization", "") != f"Bearer {fake.api_key}":
            return self._send_json(401, _error_body("Incorrect API key provided.", "invalid_request_error",
                                                    "invalid_api_key"))
        if not fake.finetuning_access:
            return self._send_json(403, _error_body(NO_ACCESS, "invalid_request_error", "permission_denied"))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        status, obj, raw = fake._handle(self.command, path.split("/")[2:], body, query, self.raw_body,
                                        self.headers.get("Content-Type", ""))
        if raw is not None:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        self._send_json(status, obj)


def _not_found(what: str, ident: str) -> tuple[int, dict, None]:
    return 404, _error_body(f"No such {what}: {ident}", "invalid_request_error", "not_found"), None


def _bad_request(message: str, param: str | None = None) -> tuple[int, dict, None]:
    return 400, _error_body(message, "invalid_request_error", None, param), None


class FakeFineTuning(FakeOpenAI):
    """FakeOpenAI with Files and fine-tuning jobs. ``steps`` is the number of training steps of every job."""

    def __init__(self, *args: Any, steps: int = 4, org: str = "acme", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps = steps
        self.org = org
        self.finetuning_access = True
        self.advance_on_retrieve = True
        self.blocked_phrase = "UNSAFE-CONTENT"
        self.files: dict[str, dict] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.job_events: dict[str, list[dict]] = {}
        self.job_checkpoints: dict[str, list[dict]] = {}
        self._state = threading.RLock()
        self._counter = itertools.count(1)

    def start(self) -> FakeFineTuning:
        super().start()
        # Same server, same thread: only the handler class differs, so every request sees the jobs routes.
        self._httpd.RequestHandlerClass = _JobsHandler
        return self

    # -- routing -------------------------------------------------------------------------------------

    def _handle(self, method: str, parts: list[str], body: Any, query: dict, raw: bytes,
                content_type: str) -> tuple[int, Any, bytes | None]:
        with self._state:
            if parts[0] == "files":
                return self._files(method, parts[1:], raw, content_type)
            if parts[:2] == ["fine_tuning", "jobs"]:
                return self._jobs(method, parts[2:], body, query)
        return 404, _error_body(f"Invalid URL ({method} /v1/{'/'.join(parts)})", "invalid_request_error", None), None

    def _files(self, method: str, rest: list[str], raw: bytes, content_type: str):
        if method == "POST" and not rest:
            fields = _multipart(raw, content_type)
            if "file" not in fields:
                return _bad_request("Missing required parameter: 'file'.", "file")
            if fields.get("purpose", (None, b""))[1].decode() not in ("fine-tune", "batch", "assistants"):
                return _bad_request("Invalid purpose.", "purpose")
            filename, content = fields["file"]
            return 200, self.add_file(filename or "upload.jsonl", content, "fine-tune"), None
        if not rest or rest[0] not in self.files:
            return _not_found("file", rest[0] if rest else "")
        if method == "GET" and len(rest) == 1:
            return 200, self.files[rest[0]], None
        if method == "GET" and rest[1:] == ["content"]:
            return 200, None, self.contents[rest[0]]
        return _not_found("route", "/".join(rest))

    def _jobs(self, method: str, rest: list[str], body: Any, query: dict):
        if not rest:
            if method == "POST":
                return self._create(body if isinstance(body, dict) else {})
            jobs = sorted(self.jobs.values(), key=lambda j: j["_n"], reverse=True)
            return 200, _page([_public(j) for j in jobs], query), None
        job = self.jobs.get(rest[0])
        if job is None:
            return _not_found("fine-tuning job", rest[0])
        if method == "GET" and len(rest) == 1:
            if self.advance_on_retrieve:
                self.advance(job["id"])
            return 200, _public(job), None
        if method == "POST" and rest[1:] == ["cancel"]:
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return _bad_request(f"Job {job['id']} has already {job['status']}; it cannot be cancelled.")
            job.update(status="cancelled", finished_at=int(time.time()))
            self._event(job, "Fine-tuning job cancelled", "info")
            return 200, _public(job), None
        if method == "GET" and rest[1:] == ["events"]:
            return 200, _page(list(reversed(self.job_events[job["id"]])), query), None
        if method == "GET" and rest[1:] == ["checkpoints"]:
            return 200, _page(list(reversed(self.job_checkpoints[job["id"]])), query), None
        return _not_found("route", "/".join(rest))

    # -- state ---------------------------------------------------------------------------------------

    def add_file(self, filename: str, content: bytes, purpose: str) -> dict:
        with self._state:
            file_id = f"file-{next(self._counter):06d}"
            self.contents[file_id] = content
            self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content),
                                   "created_at": int(time.time()), "filename": filename, "purpose": purpose,
                                   "status": "processed"}
            return self.files[file_id]

    def _create(self, body: dict):
        model, training = body.get("model"), body.get("training_file")
        if model not in TUNABLE_MODELS:
            return _bad_request(f"Model {model} is not available for fine-tuning or does not exist.", "model")
        for param in ("training_file", "validation_file"):
            if body.get(param) is not None and body[param] not in self.files:
                return _bad_request(f"invalid {param}: {body[param]}", param)
        if not training:
            return _bad_request("Missing required parameter: 'training_file'.", "training_file")
        suffix = body.get("suffix")
        if suffix is not None and len(suffix) > 64:
            return _bad_request("suffix is longer than 64 characters.", "suffix")
        method = body.get("method") or {"type": "supervised", "supervised": {}}
        chosen = (method.get("supervised") or {}).get("hyperparameters") or body.get("hyperparameters") or {}
        n = next(self._counter)
        job = {
            "_n": n, "_step": 0, "_suffix": suffix or "",
            "id": f"ftjob-{n:08d}", "object": "fine_tuning.job", "model": model, "created_at": int(time.time()),
            "finished_at": None, "fine_tuned_model": None, "organization_id": f"org-{self.org}",
            "result_files": [], "status": "validating_files", "training_file": training,
            "validation_file": body.get("validation_file"), "trained_tokens": None, "error": None,
            "seed": body.get("seed") if body.get("seed") is not None else 42, "estimated_finish": None,
            "hyperparameters": {key: chosen.get(key, "auto") for key in HYPERPARAMETERS},
            "method": {"type": "supervised", "supervised": {"hyperparameters": dict(chosen)}},
        }
        self.jobs[job["id"]] = job
        self.job_events[job["id"]] = []
        self.job_checkpoints[job["id"]] = []
        self._event(job, f"Created fine-tuning job: {job['id']}")
        self._event(job, f"Validating training file: {training}")
        return 200, _public(job), None

    def advance(self, job_id: str) -> None:
        """Move a job one stage on, as time would."""
        with self._state:
            job = self.jobs[job_id]
            if job["status"] == "validating_files":
                problem = self._file_problem(job["training_file"], job["model"], training=True) or (
                    job["validation_file"] and self._file_problem(job["validation_file"], job["model"]))
                if problem:
                    job.update(status="failed", finished_at=int(time.time()),
                               error={"code": "invalid_training_file", "message": problem, "param": "training_file"})
                    self._event(job, problem, "error")
                    return
                job["status"] = "queued"
                self._event(job, "Files validated, moving job to queued state")
            elif job["status"] == "queued":
                examples = _lines(self.contents[job["training_file"]])
                chosen = job["method"]["supervised"]["hyperparameters"]
                job["hyperparameters"] = {key: chosen.get(key, auto) for key, auto in AUTO_VALUES.items()}
                job["_examples"] = len(examples)
                job["status"] = "running"
                job["estimated_finish"] = int(time.time()) + 60
                self._event(job, "Fine-tuning job started")
            elif job["status"] == "running" and job["_step"] < self.steps:
                self._train_step(job)
            elif job["status"] == "running":
                self._succeed(job)

    def _train_step(self, job: dict) -> None:
        job["_step"] += 1
        step = job["_step"]
        data = _metrics(step, self.steps, bool(job["validation_file"]))
        message = f"Step {step}/{self.steps}: training loss={data['train_loss']:.4f}"
        if "valid_loss" in data:
            message += f", validation loss={data['valid_loss']:.4f}"
        self._event(job, message, data=data, type_="metrics")
        epochs = job["hyperparameters"]["n_epochs"]
        per_epoch = max(1, self.steps // max(1, min(epochs, self.steps)))
        if step % per_epoch == 0:
            self.job_checkpoints[job["id"]].append({
                "id": f"ftckpt-{job['_n']:04d}{step:04d}", "object": "fine_tuning.job.checkpoint",
                "created_at": int(time.time()), "fine_tuning_job_id": job["id"], "step_number": step,
                "fine_tuned_model_checkpoint": f"{self._model_name(job)}:ckpt-step-{step}",
                "metrics": {k: v for k, v in data.items() if k != "total_steps"}})

    def _succeed(self, job: dict) -> None:
        rows = [_metrics(step, self.steps, bool(job["validation_file"])) for step in range(1, self.steps + 1)]
        csv = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n" + "".join(
            f"{r['step']},{r['train_loss']},{r['train_mean_token_accuracy']},{r.get('valid_loss', '')},"
            f"{r.get('valid_mean_token_accuracy', '')}\n" for r in rows)
        result = self.add_file("step_metrics.csv", csv.encode(), "fine-tune-results")
        name = self._model_name(job)
        words = sum(len(line.split()) for line in _lines(self.contents[job["training_file"]]))
        job.update(status="succeeded", fine_tuned_model=name, finished_at=int(time.time()), result_files=[result["id"]],
                   trained_tokens=words * job["hyperparameters"]["n_epochs"], estimated_finish=None)
        if name not in self.models:
            self.models.append(name)
        self._event(job, f"New fine-tuned model created: {name}")
        self._event(job, "The job has successfully completed")

    def _model_name(self, job: dict) -> str:
        return f"ft:{job['model']}:{self.org}:{job['_suffix']}:{job['_n']:08x}"

    def _file_problem(self, file_id: str, model: str, training: bool = False) -> str | None:
        content = self.contents[file_id]
        if self.blocked_phrase and self.blocked_phrase.encode() in content:
            return BLOCKED
        lines = _lines(content)
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                return f"Invalid file format. Line {number} is not valid JSON."
            if model in COMPLETION_BASES:
                if not (isinstance(record, dict) and isinstance(record.get("prompt"), str)
                        and isinstance(record.get("completion"), str)):
                    return f"Invalid file format. Line {number}: expected 'prompt' and 'completion' strings."
            elif not (isinstance(record, dict) and isinstance(record.get("messages"), list)
                      and any(isinstance(m, dict) and m.get("role") == "assistant" for m in record["messages"])):
                return f"Invalid file format. Line {number}: expected 'messages' with an assistant message."
        if training and len(lines) < MIN_EXAMPLES:
            return f"Training file has {len(lines)} example(s), but must have at least {MIN_EXAMPLES} examples."
        return None

    def _event(self, job: dict, message: str, level: str = "info", data: dict | None = None,
               type_: str = "message") -> None:
        events = self.job_events[job["id"]]
        events.append({"id": f"ftevent-{job['_n']:04d}{len(events) + 1:05d}", "object": "fine_tuning.job.event",
                       "created_at": int(time.time()), "level": level, "message": message,
                       "data": data or {}, "type": type_})


def _metrics(step: int, total: int, with_validation: bool) -> dict:
    loss = round(2.0 * 0.7 ** step + 0.1, 4)
    data = {"step": step, "train_loss": loss, "train_mean_token_accuracy": round(1 - loss / 3, 4), "total_steps": total}
    if with_validation:
        valid = round(loss + 0.15, 4)
        data.update(valid_loss=valid, valid_mean_token_accuracy=round(1 - valid / 3, 4))
    return data


def _lines(content: bytes) -> list[str]:
    return [line for line in content.decode("utf-8", "replace").splitlines() if line.strip()]


def _public(job: dict) -> dict:
    return {k: v for k, v in job.items() if not k.startswith("_")}


def _page(items: list[dict], query: dict) -> dict:
    """One cursor page: items after the one whose id is `after`, at most `limit`."""
    if query.get("after"):
        ids = [i["id"] for i in items]
        items = items[ids.index(query["after"]) + 1:] if query["after"] in ids else []
    limit = int(query.get("limit") or 20)
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


def _multipart(raw: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """{field name: (filename, bytes)} of a multipart/form-data body."""
    message = BytesParser(policy=default_policy).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields
