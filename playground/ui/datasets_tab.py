"""Datasets tab: the datasets with their counts and tokens; browse, edit, tag, exclude and delete examples (with undo).

Validation, statistics, export and import are in dataset_checks.py; reviewing the log is in log_review.py.
"""

import json
from collections import Counter
from dataclasses import dataclass
from itertools import islice

import gradio as gr
from gradio.context import Context

from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..datasets.examples import DEFAULT_MODEL, Example
from ..datasets.stats import CONTEXT_LIMITS, TRAINING_PRICES, example_tokens
from ..datasets.store import delete_examples, get_example, iter_examples, undo_delete, update_example
from .dataset_checks import build_checks
from .datasets_shared import DATASET_COLUMNS, DatasetsTab, dataset_choices, dataset_rows
from .format import error_notice
from .lists import snippet
from .log_review import build_log_review

EXAMPLE_COLUMNS = ["✓", "id", "status", "tags", "messages", "tokens", "first user message", "last reply", "source"]
EXAMPLE_TYPES = ["bool", "number", "str", "str", "number", "number", "str", "str", "str"]
EMPTY_EXAMPLE = [False, "", "", "", "", "", "", "", ""]
MAX_ROWS = 500  # examples shown at once; the filter narrows a bigger dataset
DEPLOY_PROMPT_SAMPLE = 1000  # examples whose personas suggest the deploy prompt


# --- pure translations -------------------------------------------------------------------------------------


def source_text(example: Example) -> str:
    s = example.source
    if s.file:
        return f"{s.file.rsplit('/', 1)[-1]}:{s.line}"
    parts = [s.persona or "", s.model or "", ("exchanges " + ", ".join(map(str, s.exchange_ids))) if s.exchange_ids else ""]
    return " · ".join(p for p in parts if p)


def matches(example: Example, words: list[str]) -> bool:
    text = " ".join([*(m.text for m in example.conversation()), example.rejected or "", *example.tags]).casefold()
    return all(w in text for w in words)


def example_rows(services: Services, name: str | None, query: str = "") -> list[list]:
    if not name:
        return [EMPTY_EXAMPLE]
    words = (query or "").casefold().split()
    rows = []
    for e in iter_examples(services.store, name):
        if words and not matches(e, words):
            continue
        user = next((m.content for m in e.messages if m.role == "user"), "")
        reply = next((m.text for m in reversed(e.conversation()) if m.role == "assistant"), "")
        rows.append([False, e.id, "excluded" if e.excluded else "", ", ".join(e.tags), len(e.conversation()),
                     example_tokens(e, DEFAULT_MODEL), snippet(user, 80), snippet(reply, 80), source_text(e)])
        if len(rows) >= MAX_ROWS:
            break
    return rows or [EMPTY_EXAMPLE]


def selected_ids(table) -> list[int]:
    rows = table.values.tolist() if hasattr(table, "values") else (table or [])
    return [int(r[1]) for r in rows if r and r[0] is True and r[1] not in (None, "")]


PAIR_KEYS = ("messages", "chosen", "rejected")


def messages_json(example: Example) -> str:
    """What the editor holds: the messages; for a preference pair, an object with its chosen and rejected replies."""
    messages = [m.as_record() for m in example.messages]  # content stays, null for a turn that only calls tools
    if example.is_preference:
        return json.dumps({"messages": messages, "chosen": example.chosen, "rejected": example.rejected},
                          ensure_ascii=False, indent=2)
    return json.dumps(messages, ensure_ascii=False, indent=2)


def edited_fields(raw: str) -> dict:
    """The example's fields from the editor's JSON: a list of messages, or an object with chosen and rejected."""
    try:
        parsed = json.loads(raw or "")
    except json.JSONDecodeError as e:
        raise PlaygroundError(f"The messages are not valid JSON ({e.msg}, line {e.lineno}).") from None
    if isinstance(parsed, list):
        return {"messages": parsed}
    if not isinstance(parsed, dict):
        raise PlaygroundError("Write a JSON list of messages, or for a preference pair an object with "
                              '"messages", "chosen" and "rejected".')
    unknown = [k for k in parsed if k not in PAIR_KEYS]
    if unknown:
        raise PlaygroundError(f"Unknown key '{unknown[0]}': an example holds {', '.join(PAIR_KEYS)}.")
    return parsed


def parse_tags(text: str) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in (text or "").split(",") if t.strip()))


def usual_deploy_prompt(services: Services, name: str | None) -> str:
    """The deploy prompt of the persona most of the dataset's examples came from, if any."""
    if not name:
        return ""
    sample = islice(iter_examples(services.store, name), DEPLOY_PROMPT_SAMPLE)
    personas = Counter(e.source.persona for e in sample if e.source.persona)
    for persona, _ in personas.most_common():
        if persona in services.personas and services.personas[persona].deploy_prompt:
            return services.personas[persona].deploy_prompt
    return ""


# --- the tab -----------------------------------------------------------------------------------------------


def build_datasets_tab(services: Services, chat) -> DatasetsTab:

    tab_block = Context.block  # the enclosing gr.Tab: the lists are refreshed whenever it is opened
    names = dataset_choices(services)
    with gr.Row(elem_id="dataset-picker"):
        dataset = gr.Dropdown(names, value=names[0] if names else None, label="Dataset", scale=2, allow_custom_value=True)
        model = gr.Dropdown(_check_models(), value=DEFAULT_MODEL, label="Model", allow_custom_value=True, scale=1,
                            info="Its tokenizer and training context are used by the checks.")
        deploy_prompt = gr.Textbox(usual_deploy_prompt(services, names[0] if names else None), label="Deploy prompt",
                                   scale=3, lines=2, info="The system prompt the fine-tune will run with; "
                                                          "filled in from the examples' persona.")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=90)
    with gr.Row(elem_id="dataset-tokenizer"):
        tokenizer = gr.Textbox("", label="Tokenizer of an open model", scale=3, max_lines=1,
                               placeholder="/path/to/tokenizer.json or ~/.cache/huggingface/hub/models--org--name",
                               info="Counts with this local tokenizer (Llama, Qwen, Mistral…) instead of the Model's; "
                                    "never downloaded.")
        context = gr.Number(0, label="Context limit", precision=0, minimum=0, scale=1,
                            info="Training context in tokens; 0 = the model's own (65,536 for a tokenizer).")
    datasets = gr.Dataframe(dataset_rows(services), headers=DATASET_COLUMNS, label="Datasets (select one to open it)",
                            interactive=False, type="array", max_height=220, elem_id="dataset-list")
    shared = DatasetsTab(dataset, datasets, model, deploy_prompt, tokenizer, context)
    with gr.Tabs():
        with gr.Tab("Examples", id="examples", elem_id="dataset-examples"):
            examples = _build_examples(services, shared)
        build_checks(services, shared)
        with gr.Tab("Review the log", id="review", elem_id="log-review") as review_tab:
            build_log_review(services, shared, review_tab)

    def on_refresh(name, query):
        choices = dataset_choices(services)
        current = name if name in choices else (choices[0] if choices else None)
        return {dataset: gr.update(choices=choices, value=current), datasets: dataset_rows(services),
                examples.table: example_rows(services, current, query)}

    def on_pick(name, query):
        return {examples.table: example_rows(services, name, query), deploy_prompt: usual_deploy_prompt(services, name),
                examples.notice: ""}

    def on_select_dataset(evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value and evt.row_value[0] else gr.skip()

    refresh_outputs = [dataset, datasets, examples.table]
    refresh.click(on_refresh, [dataset, examples.query], refresh_outputs, api_name="datasets_list")
    if isinstance(tab_block, gr.Tab):
        tab_block.select(on_refresh, [dataset, examples.query], refresh_outputs, api_visibility="private")
    dataset.change(on_pick, [dataset, examples.query], [examples.table, deploy_prompt, examples.notice],
                   api_name="dataset_examples")
    datasets.select(on_select_dataset, None, [dataset], api_visibility="private")
    return shared


def _bound(handler, action: str):
    def bound(*values):
        return handler(action, *values)

    return bound


def _check_models() -> list[str]:

    return sorted({DEFAULT_MODEL, *CONTEXT_LIMITS, *TRAINING_PRICES})


@dataclass
class ExamplesSection:
    table: gr.Dataframe
    query: gr.Textbox
    notice: gr.Markdown


def _build_examples(services: Services, shared: DatasetsTab) -> ExamplesSection:
    first = shared.dataset.value
    with gr.Row():
        query = gr.Textbox(label="Filter", placeholder="Words in the messages or tags", scale=4)
        tag = gr.Textbox(label="Tag", placeholder="a tag for the selected examples", scale=2)
    table = gr.Dataframe(example_rows(services, first), headers=EXAMPLE_COLUMNS, datatype=EXAMPLE_TYPES,
                         label="Examples (tick to select; click a row to edit it)", interactive=True, type="array",
                         static_columns=list(range(1, len(EXAMPLE_COLUMNS))), max_height=420, wrap=True,
                         column_widths=["6%", "5%", "8%", "8%", "9%", "7%", "21%", "21%", "15%"])
    with gr.Row():
        tag_button = gr.Button("Tag selected", size="sm")
        exclude_button = gr.Button("Exclude selected", size="sm")
        include_button = gr.Button("Include selected", size="sm")
        delete_button = gr.Button("Delete selected", size="sm", variant="stop")
        undo_button = gr.Button("Undo delete", size="sm")
    notice = gr.Markdown("")
    with gr.Accordion("Edit an example", open=True):
        with gr.Row():
            example_id = gr.Textbox("", label="Example", scale=1, interactive=False, placeholder="click a row")
            tags = gr.Textbox(label="Tags", placeholder="comma, separated", scale=3)
            excluded = gr.Checkbox(False, label="Excluded (kept, but not trained on)", scale=2)
        messages = gr.Code("", language="json", label="Messages (with chosen and rejected for a preference pair)",
                           interactive=True, max_lines=30)
        save = gr.Button("Save example", variant="primary")
    deleted = gr.State([])
    section = ExamplesSection(table, query, notice)
    name = shared.dataset

    def listed(dataset, text, message):
        return {table: example_rows(services, dataset, text), notice: message}

    def on_row(evt: gr.SelectData):
        if not evt.row_value or evt.row_value[1] in (None, "") or (evt.index and evt.index[1] == 0):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        example = get_example(services.store, int(evt.row_value[1]))
        return str(example.id), ", ".join(example.tags), example.excluded, messages_json(example)

    def on_save(dataset, text, eid, tag_text, is_excluded, raw):
        if not str(eid or "").strip().isdigit():
            return {notice: error_notice("Click an example in the table to edit it.")}
        try:
            update_example(services.store, int(eid), **edited_fields(raw), tags=parse_tags(tag_text),
                           excluded=bool(is_excluded))
        except PlaygroundError as e:
            return {notice: error_notice(str(e))}
        return {**listed(dataset, text, f"Example {int(eid)} saved."), shared.datasets: dataset_rows(services)}

    def on_bulk(action, dataset, text, rows, tag_text, undo):
        ids = selected_ids(rows)
        if not ids:
            return {notice: error_notice("Tick the examples to change in the first column.")}
        try:
            if action == "delete":
                gone = delete_examples(services.store, ids)
                return {**listed(dataset, text, f"Deleted {len(gone)} example{'s' if len(gone) != 1 else ''} "
                                                f"({', '.join(map(str, gone))}). **Undo delete** brings them back."),
                        deleted: gone, shared.datasets: dataset_rows(services)}
            for i in ids:
                example = get_example(services.store, i)
                if action == "tag":
                    if not tag_text.strip():
                        return {notice: error_notice("Type the tag to add in the Tag box.")}
                    update_example(services.store, i, tags=list(dict.fromkeys([*example.tags, *parse_tags(tag_text)])))
                else:
                    update_example(services.store, i, excluded=action == "exclude")
        except PlaygroundError as e:
            return {notice: error_notice(str(e))}
        done = {"tag": "Tagged", "exclude": "Excluded", "include": "Included"}[action]
        return {**listed(dataset, text, f"{done} {len(ids)} example{'s' if len(ids) != 1 else ''}."),
                shared.datasets: dataset_rows(services)}

    def on_undo(dataset, text, undo):
        if not undo:
            return {notice: error_notice("Nothing to undo.")}
        restored = undo_delete(services.store, undo)
        return {**listed(dataset, text, f"Restored {restored} example{'s' if restored != 1 else ''}."), deleted: [],
                shared.datasets: dataset_rows(services)}

    changed = [table, notice, deleted, shared.datasets]
    bulk_inputs = [name, query, table, tag, deleted]
    for button, action in [(tag_button, "tag"), (exclude_button, "exclude"), (include_button, "include"),
                           (delete_button, "delete")]:
        button.click(_bound(on_bulk, action), bulk_inputs, changed, api_name=f"examples_{action}")
    undo_button.click(on_undo, [name, query, deleted], changed, api_name="examples_undo_delete")
    query.submit(lambda d, q: listed(d, q, ""), [name, query], [table, notice], api_visibility="private")
    table.select(on_row, None, [example_id, tags, excluded, messages], api_visibility="private")
    save.click(on_save, [name, query, example_id, tags, excluded, messages], [table, notice, shared.datasets],
               api_name="example_save")
    return section
