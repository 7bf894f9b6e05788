"""A/B batch mode: a prompt set or a dataset split through every column, with checks, summaries and downloads."""

import tempfile
import threading
from pathlib import Path

import gradio as gr
import pandas as pd

from ..ab import arena as ab
from ..ab.batch import BatchOutcome, ColumnConfig, ColumnSummary, RowResult, export_csv, export_jsonl, run_batch
from ..ab.checks import Check
from ..ab.promptset import PromptRow
from ..ab.sources import dataset_split_rows, prompt_set_rows, results_path
from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..datasets.splits import DEFAULT_RATIOS
from .format import error_notice
from .lists import dataset_names

FROM_FILE, FROM_DATASET = "Prompt-set file", "Dataset split"
NO_CHECK = "none (expected shown only)"
IGNORING_CASE = " (ignore case)"
CHECK_KINDS = ["exact", f"exact{IGNORING_CASE}", "contains", f"contains{IGNORING_CASE}", "json_equal", "json_valid",
               "regex", "groups", NO_CHECK]
SUMMARY_COLUMNS = ["column", "model", "replies", "errors", "passed", "score", "tokens", "cost $", "p50 ms", "p95 ms"]
CLIP = 300
HINT = ("Runs every prompt through the columns set up above (model, system prompt, parameters; a prompt's own "
        "system message is kept when a column's system prompt is empty). Finished rows are saved as they come in: "
        "running the same comparison again resumes it without asking for them twice.")


def column_configs(services: Services, columns: list[ab.ArenaColumn]) -> list[ColumnConfig]:
    names = ab.check_columns(services, columns)
    return [ColumnConfig(label=name, model=c.settings.model, system_prompt=c.settings.system_prompt,
                         params=c.settings.params) for name, c in zip(names, columns)]


def summary_rows(summaries: list[ColumnSummary]) -> list[list]:
    def ms(value):
        return round(value) if value is not None else ""
    return [[s.column, s.model, f"{s.replies}/{s.rows}", s.errors, f"{s.passed}/{s.checked}" if s.checked else "",
             f"{s.score:.2f}" if s.score is not None else "", s.prompt_tokens + s.completion_tokens,
             f"{s.cost_usd:.6f}" if s.cost_usd is not None else "no price set", ms(s.p50_latency_ms),
             ms(s.p95_latency_ms)] for s in summaries] or [[""] * len(SUMMARY_COLUMNS)]


def clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"


def cell(result: RowResult | None) -> str:
    if result is None:
        return "(not run)"
    if result.error:
        return f"⚠️ {clip(result.error)}"
    mark = "" if result.check is None else "✓ " if result.check.passed else "✗ "
    return mark + clip(result.reply)


def side_by_side(rows: list[PromptRow], columns: list[ColumnConfig], results: list[RowResult]) -> list[list]:
    """One line per prompt: its text, what was expected, then each column's reply marked ✓/✗ by its check."""
    by_pair = {(r.row_id, r.column): r for r in results}
    return [[row.id, clip(row.preview(CLIP)), "" if row.expected is None else clip(row.expected),
             *(cell(by_pair.get((row.id, c.label))) for c in columns)] for row in rows] or [[""] * 3]


def outcome_status(outcome: BatchOutcome, path: Path, total: int) -> str:
    done = len(outcome.results)
    of_total = plural(total, "reply", "replies")
    head = (f"**Cancelled** after {done} of {of_total}: run again to resume." if outcome.cancelled
            else f"**Done**: {done} of {of_total}.")
    parts = [head, f"{outcome.asked} asked now, {outcome.resumed} taken from the earlier run.", f"Results: `{path}`"]
    return " ".join(parts) + "".join(f"\n- {p}" for p in outcome.problems)


def check_of(choice: str) -> Check | None:
    """The check a 'Check for dataset rows' choice names: 'contains (ignore case)' -> contains, ignoring case."""
    if choice == NO_CHECK:
        return None
    kind = choice.removesuffix(IGNORING_CASE)
    return Check(kind=kind, ignore_case=kind != choice)


def cleared() -> tuple[list[list], pd.DataFrame, None]:
    """The result tables and downloads with nothing in them, so a refused run leaves no earlier results on screen."""
    return [[""] * len(SUMMARY_COLUMNS)], pd.DataFrame([[""] * 3], columns=["id", "prompt", "expected"]), None


def fine_tuned_choices(services: Services) -> list[tuple[str, str]]:
    return [(label, value) for label, value in services.registry.choices() if value.partition(":")[2].startswith("ft:")]


def build_batch(services: Services, setups: list, count: gr.Radio, parse_columns) -> None:
    cancels: dict[str, threading.Event] = {}  # the running batch of each browser session, for Cancel
    gr.Markdown(HINT)
    source = gr.Radio([FROM_FILE, FROM_DATASET], value=FROM_FILE, label="Prompts from")
    with gr.Row() as from_file:
        upload = gr.File(label="Prompt set (.jsonl)", file_types=[".jsonl"], type="filepath", height=120)
        with gr.Column():
            path = gr.Textbox(label="or a path on this machine", placeholder="/path/to/prompts.jsonl", max_lines=1)
            skip_bad = gr.Checkbox(False, label="Skip bad lines", info="Run the good lines of a file with bad ones.")
    with gr.Row(visible=False) as from_dataset:
        # Custom values allowed: datasets made after the page was built are not among the server's choices.
        dataset = gr.Dropdown(dataset_names(services), value=None, label="Dataset", allow_custom_value=True)
        split = gr.Dropdown(["validation", "test", "train"], value="validation", label="Split")
        ratios = gr.Textbox(DEFAULT_RATIOS, label="Split ratios", info="As in the Datasets tab (seed 0).", max_lines=1)
        check = gr.Dropdown(CHECK_KINDS, value="exact", label="Check for dataset rows",
                            info="Compares each reply with the example's own reply.")
    with gr.Row():
        workers = gr.Slider(1, 32, value=8, step=1, label="Concurrency", info="Requests in flight at once.")
        run = gr.Button("Run batch", variant="primary", scale=0, min_width=140)
        cancel = gr.Button("Cancel", variant="stop", scale=0, min_width=100)
    with gr.Accordion("Base vs fine-tuned on my validation split", open=False) as shortcut:
        with gr.Row():
            base = gr.Dropdown(services.registry.choices(), value=None, label="Base model", allow_custom_value=True)
            tuned = gr.Dropdown(fine_tuned_choices(services), value=None, label="Fine-tuned model",
                                allow_custom_value=True)
            validation_of = gr.Dropdown(dataset_names(services), value=None, label="Validation split of",
                                        allow_custom_value=True)
        one_click = gr.Button("Base vs fine-tuned on my validation split", variant="primary")
    status = gr.Markdown("", label="Status", elem_id="ab-batch-status")
    summary = gr.Dataframe([[""] * len(SUMMARY_COLUMNS)], headers=SUMMARY_COLUMNS, label="Per column",
                           interactive=False, type="array")
    per_row = gr.Dataframe([[""] * 3], headers=["id", "prompt", "expected"], label="Side by side", interactive=False,
                           type="array", wrap=True, max_height=500, elem_id="ab-batch-rows")
    downloads = gr.File(label="Download (CSV, JSONL)", file_count="multiple", interactive=False, height=100)

    def load_rows(kind, uploaded, typed_path, skip, dataset_name, split_name, split_ratios, check_kind):
        if kind == FROM_DATASET:
            checker = check_of(check_kind)
            rows = dataset_split_rows(services.store, dataset_name, split_name, split_ratios or DEFAULT_RATIOS, check=checker)
            if check_kind == NO_CHECK:
                for row in rows:
                    row.check = None
            return rows, f"{dataset_name}-{split_name}", []
        file = uploaded or (typed_path or "").strip()
        if not file:
            raise PlaygroundError("Upload a prompt-set file (.jsonl) or type its path, or pick a dataset split.")
        prompt_set = prompt_set_rows(Path(file), bool(skip))
        return prompt_set.rows, Path(file).stem, [str(p) for p in prompt_set.problems]

    def on_run(kind, uploaded, typed_path, skip, dataset_name, split_name, split_ratios, check_kind, concurrency,
               columns_count, request: gr.Request, progress=gr.Progress(), *values):
        try:
            columns = column_configs(services, parse_columns(int(columns_count), list(values)))
            rows, name, skipped = load_rows(kind, uploaded, typed_path, skip, dataset_name, split_name,
                                            split_ratios, check_kind)
            results_file = results_path(services.home, name, rows, columns)
        except PlaygroundError as e:
            gr.Warning(str(e).splitlines()[0])
            return {status: error_notice(str(e).splitlines()[0]) + _listing(str(e)),
                    **dict(zip([summary, per_row, downloads], cleared()))}
        stop = cancels[request.session_hash] = threading.Event()
        total = len(rows) * len(columns)
        try:
            outcome = run_batch(rows, columns, results_file, services.registry.resolve, services.prices(),
                                workers=int(concurrency), cancel=stop,
                                progress=lambda done, all_: progress((done, all_), desc="replies", unit="replies"))
        except PlaygroundError as e:
            gr.Warning(str(e))
            return {status: error_notice(str(e)), **dict(zip([summary, per_row, downloads], cleared()))}
        finally:
            cancels.pop(request.session_hash, None)
        folder = Path(tempfile.mkdtemp(prefix="playground-batch-"))
        files = [str(export_csv(outcome.results, folder / f"{results_file.stem}.csv")),
                 str(export_jsonl(outcome.results, folder / f"{results_file.stem}.jsonl"))]
        note = "".join(f"\n- skipped: {p}" for p in skipped)
        return {status: outcome_status(outcome, results_file, total) + note,
                summary: summary_rows(outcome.summaries),
                # A plain value, not a component: API clients get the table itself (headers and data).
                per_row: pd.DataFrame(side_by_side(rows, columns, outcome.results),
                                      columns=["id", "prompt", "expected", *(c.label for c in columns)]),
                downloads: files}

    def on_cancel(request: gr.Request):
        stop = cancels.get(request.session_hash)
        if stop is None:
            return {status: "No batch is running."}
        stop.set()
        return {status: "Cancelling: replies in flight finish and are kept; run again to resume."}

    def on_fill(base_model, tuned_model, dataset_name):
        missing = [what for what, value in (("a base model", base_model), ("a fine-tuned model", tuned_model),
                                            ("a dataset", dataset_name)) if not (value or "").strip()]
        if missing:
            raise gr.Error(f"Pick {' and '.join(missing)} first.")
        first, second = setups[0], setups[1]
        return {count: 2, source: FROM_DATASET, split: "validation", dataset: dataset_name,
                first.model: base_model, first.label: f"base · {base_model}", first.system_prompt: "",
                second.model: tuned_model, second.label: f"fine-tuned · {tuned_model}", second.system_prompt: ""}

    def on_choices():
        names = dataset_names(services)
        return {dataset: gr.Dropdown(choices=names), validation_of: gr.Dropdown(choices=names),
                base: gr.Dropdown(choices=services.registry.choices()),
                tuned: gr.Dropdown(choices=fine_tuned_choices(services))}

    def on_source(kind):
        return {from_file: gr.Row(visible=kind == FROM_FILE), from_dataset: gr.Row(visible=kind == FROM_DATASET)}

    setup_inputs = [c for setup in setups for c in setup.inputs]
    run_inputs = [source, upload, path, skip_bad, dataset, split, ratios, check, workers, count, *setup_inputs]
    run_outputs = [status, summary, per_row, downloads]
    run.click(on_run, run_inputs, run_outputs, api_name="ab_batch")
    cancel.click(on_cancel, None, [status], api_name="ab_batch_cancel")
    fill_outputs = [count, source, split, dataset, setups[0].model, setups[0].label, setups[0].system_prompt,
                    setups[1].model, setups[1].label, setups[1].system_prompt]
    one_click.click(on_fill, [base, tuned, validation_of], fill_outputs, api_name="ab_base_vs_ft").success(
        on_run, run_inputs, run_outputs, api_visibility="private")
    source.change(on_source, [source], [from_file, from_dataset], api_visibility="private")
    # Datasets and fine-tunes made since the page was built are offered when they are asked for.
    for opened in (source.change, shortcut.expand):
        opened(on_choices, None, [dataset, validation_of, base, tuned], api_visibility="private")


def _listing(message: str) -> str:
    lines = message.splitlines()[1:]
    return ("\n" + "\n".join(lines)) if lines else ""
