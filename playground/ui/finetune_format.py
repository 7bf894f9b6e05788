"""Pure translations for the Fine-tune tab: plans, jobs, metrics and events into what its components show."""

import pandas as pd

from ..finetune.jobs import Availability, JobView, Plan, export_advice, usd
from ..finetune.store import CheckpointRecord, EventRecord, JobRecord, MetricPoint

JOB_COLUMNS = ["job", "status", "base model", "dataset", "fine-tuned model", "started (UTC)", "estimated cost"]
CHECKPOINT_COLUMNS = ["step", "checkpoint model", "train loss", "valid loss", "valid token accuracy"]
MAX_FINDINGS_SHOWN = 15


def plan_markdown(plan: Plan) -> str:
    lines = [f"**{plan.summary()[0]}**", "", f"- {plan.summary()[1]}", f"- {plan.summary()[2]}"]
    errors = plan.errors
    warnings = [f for f in plan.findings if f.severity == "warning"]
    if errors:
        lines += ["", "### ⛔ Fix these before training", *[f"- {f}" for f in errors[:MAX_FINDINGS_SHOWN]]]
        if len(errors) > MAX_FINDINGS_SHOWN:
            lines.append(f"- … and {len(errors) - MAX_FINDINGS_SHOWN} more (`python -m playground dataset validate "
                         f"{plan.settings.dataset}` lists them all)")
    if warnings:
        lines += ["", "<details><summary>Warnings to judge</summary>", "",
                  *[f"- {f}" for f in warnings[:MAX_FINDINGS_SHOWN]], "", "</details>"]
    priced = plan.priced_costs
    if priced:
        lines += ["", "| base model | epochs | billed tokens | estimated cost |", "|---|---:|---:|---:|"]
        lines += [f"| {c.model} | {c.epochs} | {c.billed_tokens:,} | {usd(c.usd)} |" for c in priced]
    return "\n".join(lines)


def no_access_markdown(message: str, dataset: str | None = None) -> str:
    return (f"### ⚠️ No fine-tuning here\n\n{message}\n\n{export_advice(dataset or 'NAME')} "
            "The Datasets tab exports the same files.")


def availability_markdown(known: Availability | None, dataset: str | None = None) -> str:
    """The line above the form: can this endpoint fine-tune, and if not, how to train elsewhere."""
    if known is None:
        return ""
    if known.offered:
        return f"✅ {known.endpoint} offers fine-tuning."
    if known.offered is None:
        return f"ℹ️ {known.message}"
    return (f"### ⚠️ No fine-tuning at {known.endpoint}\n\n{known.message}\n\n**Start fine-tuning** is off for "
            f"this endpoint. {export_advice(dataset or 'NAME')} The Datasets tab exports the same files.")


def job_rows(records: list[JobRecord]) -> list[list]:
    rows = [[r.id, r.status, r.base_model, r.dataset or "",
             r.fine_tuned_model or "", (r.created_at or "")[:16].replace("T", " "),
             usd(r.estimated_cost_usd)] for r in records]
    return rows or [[""] * len(JOB_COLUMNS)]


def status_markdown(view: JobView | None) -> str:
    if view is None:
        return "Select a job in the table to follow it."
    r = view.record
    hyper = r.hyperparameters or {}
    settings = ", ".join(f"{label} {hyper.get(key, 'auto')}" for key, label in (
        ("n_epochs", "epochs"), ("batch_size", "batch size"), ("learning_rate_multiplier", "LR multiplier")))
    cost = f" · estimated {usd(r.estimated_cost_usd)}" if r.estimated_cost_usd is not None else ""
    lines = [f"**{r.id}** · **{r.status}** · {r.base_model} on {r.provider}",
             f"dataset **{r.dataset or '?'}** (split {r.split or '?'}, "
             f"seed {r.seed if r.seed is not None else 'auto'}) · "
             f"{r.train_examples} training / {r.validation_examples} validation examples · {settings}{cost}"]
    if view.metrics:
        last = view.metrics[-1]
        loss = f"train loss {last.train_loss:.4f}" if last.train_loss is not None else ""
        valid = f", validation loss {last.valid_loss:.4f}" if last.valid_loss is not None else ""
        lines.append(f"step {last.step}: {loss}{valid}")
    if r.fine_tuned_model:
        lines.append(f"Fine-tuned model: `{r.fine_tuned_model}` — now in every model picker (Chat, A/B).")
    if r.error:
        lines.append(f"⚠️ {r.error}")
    return "\n\n".join(lines)


def metric_frames(points: list[MetricPoint]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss, token accuracy) as long frames: step, value, series — one line per series."""
    def frame(series: dict[str, str]) -> pd.DataFrame:
        rows = [(p.step, getattr(p, attr), name) for name, attr in series.items() for p in points
                if getattr(p, attr) is not None]
        # Typed even when empty: the page fixes each axis's scale from the first frame it gets.
        return pd.DataFrame({"step": pd.Series([r[0] for r in rows], dtype="int64"),
                             "value": pd.Series([r[1] for r in rows], dtype="float64"),
                             "series": pd.Series([r[2] for r in rows], dtype="str")})

    return (frame({"train loss": "train_loss", "validation loss": "valid_loss"}),
            frame({"train token accuracy": "train_accuracy", "validation token accuracy": "valid_accuracy"}))


def checkpoint_rows(checkpoints: list[CheckpointRecord]) -> list[list]:
    rows = [[c.step, c.model, c.metrics.get("train_loss", ""), c.metrics.get("valid_loss", ""),
             c.metrics.get("valid_mean_token_accuracy", "")] for c in checkpoints]
    return rows or [[""] * len(CHECKPOINT_COLUMNS)]


def events_text(events: list[EventRecord]) -> str:
    return "\n".join(f"{e.created_at[:19].replace('T', ' ')}  {e.level:<5}  {e.message}" for e in events)
