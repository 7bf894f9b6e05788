"""Review the log: find logged exchanges by persona, model, rating and text, tick the good ones, add them in bulk.

Each ticked exchange becomes one example: its conversation up to that reply, rebuilt from the request as sent.
Several ticked in one conversation make one example, up to the latest of them.
"""

import gradio as gr

from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..datasets.store import AddReport, add_new_examples, get_dataset
from ..datasets.transcripts import (
    ConversionOptions,
    example_from_exchanges,
    last_user_text,
    log_facets,
    logged_exchanges,
)
from .add_to_dataset import SYSTEM_CHOICES, target_dataset
from .datasets_shared import DatasetsTab, dataset_choices, dataset_rows
from .format import error_notice
from .lists import snippet

ANY = "any"
RATING_CHOICES = [ANY, "liked", "disliked", "unrated"]
RATING_SHOWN = {1: "liked", -1: "disliked", 0: ""}
LOG_COLUMNS = ["✓", "id", "time", "persona", "model", "rating", "asked", "reply"]
LOG_TYPES = ["bool", "number", "str", "str", "str", "str", "str", "str"]
EMPTY_ROW = [False, "", "", "", "", "", "", ""]


def log_rows(services: Services, persona: str, model: str, rating: str, text: str) -> list[list]:
    rows = logged_exchanges(services.store, persona=None if persona in (None, ANY) else persona,
                            model=None if model in (None, ANY) else model, rating=rating, text=text or "")
    return [[False, e["id"], e["created_at"][:19].replace("T", " "), e["persona"], e["model"],
             RATING_SHOWN.get(e["rating"], ""), snippet(last_user_text(e["request"]), 90), snippet(e["reply"], 120)]
            for e in rows] or [EMPTY_ROW]


def ticked(rows) -> list[int]:
    rows = rows.values.tolist() if hasattr(rows, "values") else (rows or [])
    return [int(r[1]) for r in rows if r and r[0] is True and r[1] not in (None, "")]


def by_conversation(services: Services, exchange_ids: list[int]) -> list[list[int]]:
    """The ticked exchanges grouped by conversation, in the order first ticked."""
    groups: dict[str, list[int]] = {}
    for exchange_id in exchange_ids:
        groups.setdefault(services.store.exchange(exchange_id)["conversation_id"], []).append(exchange_id)
    return list(groups.values())


def build_log_review(services: Services, shared: DatasetsTab, tab: gr.Tab) -> None:
    personas, models = log_facets(services.store)
    with gr.Row():
        persona = gr.Dropdown([ANY, *personas], value=ANY, label="Persona", allow_custom_value=True)
        model = gr.Dropdown([ANY, *models], value=ANY, label="Model", allow_custom_value=True)
        rating = gr.Dropdown(RATING_CHOICES, value=ANY, label="Rating")
        text = gr.Textbox(label="Text", placeholder="Words in the request or the reply", scale=2)
        search = gr.Button("Search", scale=0, min_width=90)
    table = gr.Dataframe([EMPTY_ROW], headers=LOG_COLUMNS, datatype=LOG_TYPES, interactive=True, type="array",
                         label="Logged exchanges, newest first (tick the ones to add)", wrap=True, max_height=420,
                         static_columns=list(range(1, len(LOG_COLUMNS))),
                         column_widths=["6%", "8%", "11%", "12%", "10%", "8%", "20%", "25%"])
    with gr.Row():
        all_button = gr.Button("Tick all", size="sm")
        none_button = gr.Button("Tick none", size="sm")
    with gr.Row():
        with gr.Column():
            system = gr.Radio(SYSTEM_CHOICES, value="deploy", label="Example's system prompt")
            custom_system = gr.Textbox(label="Custom system prompt", lines=2)
        with gr.Column():
            keep_seeds = gr.Checkbox(False, label="Keep the persona's few-shot seed turns")
            speaker = gr.Checkbox(True, label="Prefix user turns with the speaker's name")
            weight_disliked = gr.Checkbox(True, label="Weight 0 on disliked replies")
            keep_greeting = gr.Checkbox(False, label="Keep the greeting",
                                        info="Off: examples start with the user, not the persona's greeting.")
        with gr.Column():
            target = gr.Dropdown(dataset_choices(services), label="Add to dataset", allow_custom_value=True)
            new_dataset = gr.Textbox(label="New dataset", placeholder="or type a name to create one")
            add = gr.Button("Add ticked to dataset", variant="primary")
    notice = gr.Markdown("")

    def on_search(p, m, r, t):
        try:
            return {table: log_rows(services, p, m, r, t), notice: ""}
        except PlaygroundError as e:
            return {notice: error_notice(str(e))}

    def on_open(p, m, r, t, current):
        found_personas, found_models = log_facets(services.store)
        choices = dataset_choices(services)
        return {persona: gr.update(choices=[ANY, *found_personas]), model: gr.update(choices=[ANY, *found_models]),
                target: gr.update(choices=choices, value=current if current in choices else None),
                **on_search(p, m, r, t)}

    def on_tick(rows, value):
        rows = rows.values.tolist() if hasattr(rows, "values") else (rows or [])
        return [[value if r[1] not in (None, "") else False, *r[1:]] for r in rows] or [EMPTY_ROW]

    def on_add(rows, dataset, new_name, system_choice, custom, seeds, prefix, weight, greeting):
        ids = ticked(rows)
        if not ids:
            return {notice: error_notice("Tick the exchanges to add in the first column.")}
        options = ConversionOptions(system=system_choice, custom_system=custom or "", keep_seed_turns=seeds,
                                    speaker_prefix=prefix, weight_disliked=weight, keep_greeting=greeting)
        examples, skipped = [], []
        for group in by_conversation(services, ids):
            try:
                examples.append(example_from_exchanges(services.store, group, options, services.personas))
            except PlaygroundError as e:
                skipped.append(f"exchange {max(group)}: {e}")
        try:
            name = target_dataset(services, dataset, new_name)
            report = add_new_examples(services.store, name, examples) if examples else AddReport(name, [])
        except PlaygroundError as e:
            return {notice: error_notice(str(e))}
        info = get_dataset(services.store, name)
        message = f"{report.summary(f'**{name}**')} (now {plural(info.examples, 'example')}, {info.tokens:,} tokens)."
        if skipped:
            message += "\n\n⚠️ Not added:\n" + "\n".join(f"- {s}" for s in skipped)
        choices = dataset_choices(services)
        return {notice: message, target: gr.update(choices=choices, value=name), new_dataset: "",
                shared.dataset: gr.update(choices=choices), shared.datasets: dataset_rows(services)}

    filters = [persona, model, rating, text]
    search.click(on_search, filters, [table, notice], api_name="log_search")
    text.submit(on_search, filters, [table, notice], api_visibility="private")
    tab.select(on_open, [*filters, target], [persona, model, target, table, notice], api_visibility="private")
    all_button.click(lambda rows: on_tick(rows, True), [table], [table], api_visibility="private")
    none_button.click(lambda rows: on_tick(rows, False), [table], [table], api_visibility="private")
    add.click(on_add, [table, target, new_dataset, system, custom_system, keep_seeds, speaker, weight_disliked,
                       keep_greeting], [notice, target, new_dataset, shared.dataset, shared.datasets],
              api_name="log_add")
