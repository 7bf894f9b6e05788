"""Datasets tab, continued: validate, statistics and cost, split and export, import."""

import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import gradio as gr

from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..datasets.examples import DEFAULT_MODEL
from ..datasets.exports import ExportRefused, export_dataset, file_stem
from ..datasets.formats import FORMATS, BadLines, UnfitExamples
from ..datasets.splits import DEFAULT_RATIOS
from ..datasets.stats import TRAINING_PRICES, counted_label, counting_model, dataset_stats, training_costs
from ..datasets.store import import_file, iter_examples
from ..datasets.validation import Finding, validate_examples
from .datasets_shared import DatasetsTab, dataset_choices, dataset_rows
from .format import error_notice

FINDING_COLUMNS = ["where", "severity", "check", "finding"]
FINDING_WIDTHS = ["12%", "10%", "22%", "56%"]
COST_COLUMNS = ["base model", "epochs", "billed tokens", "estimated cost"]
PRICE_COLUMNS = ["base model", "$ per 1M training tokens"]
PROBLEM_COLUMNS = ["line", "problem", "what is wrong"]
DETECT = "detect"


def finding_rows(findings: list[Finding]) -> list[list]:
    return [[f.where, f.severity, f.code, f.message] for f in findings] or [["", "", "", ""]]


def tally(findings: list[Finding]) -> str:
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    counts = f"**{plural(errors, 'error')}, {plural(warnings, 'warning')}**"
    if errors:
        return f"{counts}: fix the errors before exporting."
    return f"{counts}: ready to export" + (" once you have judged the warnings." if warnings else ".")


def price_table(rows) -> dict[str, float]:
    rows = rows.values.tolist() if hasattr(rows, "values") else (rows or [])
    prices = {}
    for row in rows:
        if not row or not str(row[0] or "").strip():
            continue
        try:
            prices[str(row[0]).strip()] = float(row[1])
        except (TypeError, ValueError):
            raise PlaygroundError(f"The price for {row[0]} must be a number of dollars per 1M tokens, not {row[1]!r}.") from None
    return prices


def dollars(usd: float | None) -> str:
    if usd is None:
        return "no price"
    return f"${usd:,.2f}" if usd >= 1 else f"${usd:.4f}"


def stats_markdown(name: str, stats) -> str:
    excluded = f" ({stats.excluded} excluded, not counted)" if stats.excluded else ""
    return (f"**{name}**: {plural(stats.examples, 'example')}{excluded}  \n"
            f"Tokens per example ({counted_label(stats.model)}): min {stats.tokens_min:,} · median {stats.tokens_median:,.0f} · "
            f"p95 {stats.tokens_p95:,} · max {stats.tokens_max:,} · total {stats.tokens_total:,}  \n"
            f"Over the {stats.context_limit:,}-token training context (cut from the end): {stats.over_limit}  \n"
            f"Epochs: {stats.cost.epochs} · billed tokens: {stats.cost.billed_tokens:,}")


def servable(paths: list[Path]) -> list[str]:
    """Paths Gradio may serve: files outside the working and temp folders are copied to a temp folder first."""
    roots = [Path.cwd().resolve(), Path(tempfile.gettempdir()).resolve()]
    if all(any(p.resolve().is_relative_to(r) for r in roots) for p in paths):
        return [str(p) for p in paths]
    folder = Path(tempfile.mkdtemp(prefix="playground-export-"))
    return [shutil.copy2(p, folder / p.name) for p in paths]


def build_checks(services: Services, shared: DatasetsTab) -> None:
    with gr.Tab("Validate", id="validate", elem_id="dataset-validate"):
        _build_validate(services, shared)
    with gr.Tab("Stats & cost", id="stats", elem_id="dataset-stats"):
        _build_stats(services, shared)
    with gr.Tab("Export", id="export", elem_id="dataset-export"):
        _build_export(services, shared)
    with gr.Tab("Import", id="import", elem_id="dataset-import"):
        _build_import(services, shared)


def _build_validate(services: Services, shared: DatasetsTab) -> None:
    run = gr.Button("Validate", variant="primary")
    summary = gr.Markdown("")
    findings = gr.Dataframe(finding_rows([]), headers=FINDING_COLUMNS, label="Findings by example", interactive=False,
                            type="array", wrap=True, column_widths=FINDING_WIDTHS)

    def on_validate(name, model, deploy_prompt, tokenizer="", context=0):
        if not name:
            return error_notice("Choose a dataset first."), finding_rows([])
        try:
            counted = counting_model(model or DEFAULT_MODEL, tokenizer)
        except PlaygroundError as e:
            return error_notice(str(e)), finding_rows([])
        examples = list(iter_examples(services.store, name, include_excluded=False))
        found = validate_examples(examples, counted, (deploy_prompt or "").strip() or None, context=int(context or 0))
        return tally(found), finding_rows(found)

    run.click(on_validate, [shared.dataset, shared.model, shared.deploy_prompt, shared.tokenizer, shared.context],
              [summary, findings], api_name="dataset_validate")


def _build_stats(services: Services, shared: DatasetsTab) -> None:
    with gr.Row():
        epochs = gr.Number(0, label="Epochs", precision=0, minimum=0, info="0: OpenAI's default for the size.")
        run = gr.Button("Compute", variant="primary")
    prices = gr.Dataframe([[m, p] for m, p in TRAINING_PRICES.items()], headers=PRICE_COLUMNS, label="Training prices "
                          "(edit to match today's)", interactive=True, type="array", datatype=["str", "number"])
    summary = gr.Markdown("")
    costs = gr.Dataframe([["", "", "", ""]], headers=COST_COLUMNS, label="Estimated training cost", interactive=False,
                         type="array")

    def on_stats(name, model, epoch_count, price_rows, tokenizer="", context=0):
        if not name:
            return error_notice("Choose a dataset first."), [["", "", "", ""]]
        try:
            table = price_table(price_rows)
            counted = counting_model(model or DEFAULT_MODEL, tokenizer)
        except PlaygroundError as e:
            return error_notice(str(e)), [["", "", "", ""]]
        examples = list(iter_examples(services.store, name))
        n = int(epoch_count) if epoch_count not in (None, "", 0) else None
        stats = dataset_stats(examples, counted, n, table, context=int(context or 0))
        if stats.cost.usd is None:  # an unpriced model is not priced with another model's table
            c = stats.cost
            return stats_markdown(name, stats), [[counted_label(counted), c.epochs, f"{c.billed_tokens:,}",
                                                  "no price known"]]
        rows = [[c.model, c.epochs, f"{c.billed_tokens:,}", dollars(c.usd)]
                for c in training_costs(examples, n, table)]
        return stats_markdown(name, stats), rows or [["", "", "", ""]]

    run.click(on_stats, [shared.dataset, shared.model, epochs, prices, shared.tokenizer, shared.context],
              [summary, costs], api_name="dataset_stats")


def _build_export(services: Services, shared: DatasetsTab) -> None:
    with gr.Row():
        format = gr.Dropdown(list(FORMATS), value="openai-chat", label="Format")
        ratios = gr.Textbox(DEFAULT_RATIOS, label="Split", info="train/validation(/test), e.g. 80/20 or 60/20/20; "
                                                         "blank for one file.")
        seed = gr.Number(0, label="Seed", precision=0, info="The same seed gives the same files.")
        skip_unfit = gr.Checkbox(False, label="Leave out examples the format cannot hold")
    run = gr.Button("Export", variant="primary")
    notice = gr.Markdown("")
    files = gr.File(label="Exported files", file_count="multiple", interactive=False)
    # Fixed widths: sized by its longest finding, the table ran off the right edge.
    findings = gr.Dataframe(finding_rows([]), headers=FINDING_COLUMNS, label="Findings", interactive=False,
                            type="array", wrap=True, column_widths=FINDING_WIDTHS)

    def on_export(name, model, deploy_prompt, fmt, split, seed_value, skip):
        if not name:
            return error_notice("Choose a dataset first."), None, finding_rows([])
        out = services.home / "exports" / f"{file_stem(name)}-{datetime.now():%Y%m%d-%H%M%S-%f}"
        try:
            result = export_dataset(services.store, name, fmt, out, ratios=split, seed=int(seed_value or 0),
                                    model=model or DEFAULT_MODEL, deploy_prompt=(deploy_prompt or "").strip() or None,
                                    skip_unfit=skip)
        except ExportRefused as e:
            return error_notice(str(e)), None, finding_rows(e.errors)
        except UnfitExamples as e:
            rows = [[f"example {u.example.id}", "error", "unfit", u.reason] for u in e.unfit]
            return error_notice(str(e)), None, rows
        except PlaygroundError as e:
            return error_notice(str(e)), None, finding_rows([])
        written = ", ".join(f"{p.name} ({plural(n, 'example')})" for p, n in result.files.items())
        left = f" Left out {len(result.left_out)} the format cannot hold." if result.left_out else ""
        n = len(result.warnings)
        warned = f" {plural(n, 'warning')} (listed below) did not block it." if n else ""
        message = f"Exported {written} as {fmt} to `{out}`.{left}{warned}"
        return message, servable(list(result.files)), finding_rows(result.warnings)

    run.click(on_export, [shared.dataset, shared.model, shared.deploy_prompt, format, ratios, seed, skip_unfit],
              [notice, files, findings], api_name="dataset_export")


def _build_import(services: Services, shared: DatasetsTab) -> None:
    upload = gr.File(label="JSONL file", file_types=[".jsonl", ".json", ".txt"], type="filepath")
    with gr.Row():
        name = gr.Textbox(label="New dataset name")
        format = gr.Dropdown([DETECT, *FORMATS], value=DETECT, label="Format")
        skip_bad = gr.Checkbox(False, label="Skip bad lines", info="Otherwise one bad line imports nothing.")
    run = gr.Button("Import", variant="primary")
    notice = gr.Markdown("")
    problems = gr.Dataframe([["", "", ""]], headers=PROBLEM_COLUMNS, label="Bad lines", interactive=False,
                            type="array", wrap=True, column_widths=["8%", "22%", "70%"])

    def on_upload(path):
        return file_stem(Path(path).stem) if path else gr.skip()

    def on_import(path, dataset_name, fmt, skip):
        nothing = {problems: [["", "", ""]]}
        if not path:
            return {notice: error_notice("Choose a JSONL file to import."), **nothing}
        try:
            report = import_file(services.store, Path(path), (dataset_name or "").strip(),
                                 format=None if fmt == DETECT else fmt, skip_bad=bool(skip))
        except BadLines as e:
            lines = len({p.line for p in e.problems})
            return {notice: error_notice(f"{plural(lines, 'bad line')}: nothing was imported. Fix "
                                         f"{'them' if lines != 1 else 'it'}, or tick 'Skip bad lines'."),
                    problems: [[p.line, p.code, p.message] for p in e.problems]}
        except PlaygroundError as e:
            return {notice: error_notice(str(e)), **nothing}
        formats = ", ".join(f"{n} {f}" for f, n in sorted(report.formats.items()))
        skipped = f" Skipped {plural(len({p.line for p in report.skipped}), 'bad line')} (listed)." if report.skipped else ""
        choices = dataset_choices(services)
        return {notice: f"Imported {plural(report.imported, 'example')} into **{report.dataset}** (detected: {formats}).{skipped}",
                problems: [[p.line, p.code, p.message] for p in report.skipped] or [["", "", ""]],
                shared.dataset: gr.update(choices=choices, value=report.dataset), shared.datasets: dataset_rows(services)}

    upload.upload(on_upload, [upload], [name], api_visibility="private")
    run.click(on_import, [upload, name, format, skip_bad], [notice, problems, shared.dataset, shared.datasets],
              api_name="dataset_import")
