"""Templates tab: edit template and persona files, see exactly what they send and cost, run them, keep every version,
and generate training pairs from folders of facts.

The editor's JSON is the one source of truth: the messages table, the example-pair buttons and the variables form
all write into it, and the preview is rendered from it.
"""

from dataclasses import dataclass

import gradio as gr

from ..chat.ask import stream_reply
from ..chat.personas import load_personas
from ..chat.services import Services
from ..core.coalesce import coalesce
from ..core.errors import PlaygroundError, UnknownModel
from ..datasets.examples import DEFAULT_MODEL
from ..providers.lookup import LookupProvider
from ..templates.render import (
    add_pair,
    first_row_of_pair,
    move_pair,
    pair_of,
    preview,
    remove_last_pair,
    run_inputs,
    values_for,
    with_messages,
    zero_shot,
)
from ..templates.store import MODELS, TemplateFiles, get_version, key_for, restore, save, versions
from .format import error_notice, reply_markdown
from .generation_panel import build_generation_panel
from .template_format import (
    PREVIEW_CSS,
    entered_values,
    message_rows,
    messages_from_rows,
    preview_html,
    summary_markdown,
    variable_rows,
    version_rows,
)


def template_files(services: Services) -> TemplateFiles:
    # Templates live beside the personas folder.
    return TemplateFiles({"templates": services.personas_dir.parent / "templates", "personas": services.personas_dir})


@dataclass
class Editor:
    file: gr.Dropdown
    messages: gr.Dataframe
    raw: gr.Code
    variables: gr.Dataframe
    model: gr.Dropdown
    preview: gr.HTML
    summary: gr.Markdown
    status: gr.Markdown
    reply: gr.Markdown
    versions: gr.Dataframe
    version: gr.Dropdown
    diff: gr.Code
    selected: gr.State  # the messages-table row last clicked, for moving its example pair
    folder: gr.Radio
    new_name: gr.Textbox
    buttons: dict

    def view_outputs(self) -> list:
        return [self.messages, self.raw, self.variables, self.preview, self.summary, self.status]


def build_templates_tab(services: Services) -> None:
    files = template_files(services)
    with gr.Tabs():
        with gr.Tab("Editor", id="template-editor"):
            editor = _build_editor(services, files)
        with gr.Tab("Generate data", id="template-generate"):
            build_generation_panel(services, files)
    _wire_editor(services, files, editor)


# --- rendering the editor's state ----------------------------------------------------------------------


def _resolve(services: Services, model_ref: str):
    try:
        return services.registry.resolve(model_ref)
    except UnknownModel:
        return None, (model_ref or DEFAULT_MODEL)


def render_view(services: Services, files: TemplateFiles, key: str, raw: str, variable_table, model_ref: str) -> dict:
    """Values for the messages table, variables form, preview and token line; raises FileProblem for bad JSON."""
    template = files.check(key, raw)
    entered = entered_values(variable_table)
    rows = variable_rows(template, entered)
    values = values_for(template, {name: value for name, value in rows})
    provider, model = _resolve(services, model_ref)
    prefers = template.mode == "completion"
    # The offline lookup answers any template as chat; still show a completion template as its prompt text.
    offline = provider is None or isinstance(provider, LookupProvider)
    as_prompt = prefers if offline else provider.uses_completions(model, prefers)
    shown = preview(template, values, model, services.prices(), as_prompt)
    return {"messages": message_rows(template.messages), "variables": rows, "preview": preview_html(shown),
            "summary": summary_markdown(shown)}


def _initial(services: Services, files: TemplateFiles, key: str | None, part: str):
    """A component's value computed when the page loads, so a reload shows the file as it is on disk now."""
    empty = {"raw": "", "model": None, "messages": [["user", ""]], "variables": [["", ""]], "versions": [["", "", ""]]}

    def value():
        try:
            if not key:
                return empty.get(part, "")
            raw = files.read(key)
            if part == "raw":
                return raw
            template = files.check(key, raw)
            if part == "versions":
                return version_rows(versions(services.store, key))
            # A page opened just after startup waits for the model lists: lookup cannot serve a template.
            model = services.registry.default_model_once_listed(template.model)
            return model if part == "model" else render_view(services, files, key, raw, None, model)[part]
        except PlaygroundError as e:  # a broken file must not break the page: opening it shows the problem
            return error_notice(str(e)) if part == "summary" else empty.get(part, "")
    return value


def _build_editor(services: Services, files: TemplateFiles) -> Editor:
    keys = files.keys()
    first = next((k for k in keys if k.startswith("templates/")), keys[0] if keys else None)
    initial = lambda part: _initial(services, files, first, part)  # noqa: E731
    with gr.Row():
        file = gr.Dropdown(keys, value=first, label="File", scale=3,
                           info="A template (templates/) or a persona (personas/): both are the same JSON shape.")
        model = gr.Dropdown(services.registry.choices(), value=initial("model"), label="Model", scale=2,
                            allow_custom_value=True, info="Tokens and cost are counted for this model; Run uses it.",
                            elem_id="template-model")
    with gr.Row():
        with gr.Column(scale=1):
            messages = gr.Dataframe(initial("messages"), headers=["role", "content"], label="Messages", type="array",
                                    elem_id="template-messages",
                                    interactive=True, column_count=2, wrap=True, column_widths=["17%", "83%"])
            with gr.Row():
                zero = gr.Button("Zero-shot", size="sm")
                add = gr.Button("+ example pair", size="sm")
                remove = gr.Button("− last pair", size="sm")
                up = gr.Button("Move pair up", size="sm")
                down = gr.Button("Move pair down", size="sm")
            variables = gr.Dataframe(initial("variables"), headers=["variable", "value"], label="Variables",
                                     elem_id="template-variables",
                                     type="array", interactive=True, column_count=2, wrap=True,
                                     column_widths=["22%", "78%"])
            raw = gr.Code(initial("raw"), language="json", interactive=True, label="Template JSON", max_lines=30,
                          wrap_lines=True, elem_id="template-json")
        with gr.Column(scale=1):
            summary = gr.Markdown(initial("summary"), elem_id="template-tokens")
            preview_box = gr.HTML(initial("preview"), elem_id="template-preview", label="Preview", max_height=700,
                                  css_template=PREVIEW_CSS, padding=True)
            with gr.Row():
                run = gr.Button("Run", variant="primary")
                stop = gr.Button("Stop", variant="stop")
            reply = gr.Markdown("", elem_id="template-reply", container=True, label="Reply")
    status = gr.Markdown("", elem_id="template-status")
    with gr.Row():
        save_button = gr.Button("Save", variant="primary", scale=1)
        folder = gr.Radio(list(MODELS), value="templates", label="Save as into", scale=1)
        new_name = gr.Textbox(label="New file name", placeholder="my_template.json", scale=2)
        save_as = gr.Button("Save as", scale=1)
    with gr.Accordion("Versions", open=True):
        with gr.Row():
            history = gr.Dataframe(initial("versions"), headers=["version", "saved", "changes"], label="Saved versions",
                                   type="array", interactive=False, scale=2, elem_id="template-versions")
            with gr.Column(scale=1):
                version = gr.Dropdown([], value=None, label="Version", allow_custom_value=True,
                                      info="Click a row, or pick a number.")
                restore_button = gr.Button("Restore this version")
        diff = gr.Code("", language=None, label="Changes in this version (diff to the one before)", interactive=False,
                       lines=4, max_lines=30, wrap_lines=True, elem_id="template-diff")
    buttons = {"zero": zero, "add": add, "remove": remove, "up": up, "down": down, "run": run, "stop": stop,
               "save": save_button, "save_as": save_as, "restore": restore_button}
    return Editor(file, messages, raw, variables, model, preview_box, summary, status, reply, history, version,
                  diff, gr.State(None), folder, new_name, buttons)


# --- wiring --------------------------------------------------------------------------------------------


def _shot_operations() -> dict:
    """Example-pair edits: (messages, selected row) -> (messages, selected row)."""
    def move(offset):
        def op(messages, row):
            pair = pair_of(messages, row) if row is not None else None
            moved, target = move_pair(messages, -1 if pair is None else pair, offset)
            return moved, first_row_of_pair(moved, target)
        return op
    return {
        "zero": lambda messages, row: (zero_shot(messages), None),
        "add": lambda messages, row: (add_pair(messages), None),
        "remove": lambda messages, row: (remove_last_pair(messages), None),
        "up": move(-1),
        "down": move(+1),
    }


def _reload_personas(services: Services, key: str) -> None:
    """A saved persona file is what the Chat tab sends from its next message on."""
    if not key.startswith("personas/"):
        return
    personas, _ = load_personas(services.personas_dir)
    services.personas.update(personas)
    for gone in set(services.personas) - set(personas):
        services.personas.pop(gone, None)


class EditorEvents:
    """The editor's handlers: parse the inputs, make one domain call, return {component: value}."""

    def __init__(self, services: Services, files: TemplateFiles, ed: Editor):
        self.services, self.files, self.ed = services, files, ed

    def show(self, key, raw, table, model_ref, status="", extra=None) -> dict:
        ed = self.ed
        try:
            parts = render_view(self.services, self.files, key, raw, table, model_ref)
        except PlaygroundError as e:
            return self.failed(e)
        return {ed.messages: parts["messages"], ed.variables: parts["variables"], ed.preview: parts["preview"],
                ed.summary: parts["summary"], ed.status: status, **(extra or {})}

    def history(self, key) -> dict:
        """The versions list, with the newest selected and its diff shown: what the last save changed."""
        found = versions(self.services.store, key)
        return {self.ed.versions: version_rows(found), self.ed.diff: found[0].diff if found else "",
                self.ed.version: gr.update(choices=[v.version for v in found], value=found[0].version if found else None)}

    def failed(self, e: PlaygroundError) -> dict:
        return {self.ed.status: error_notice(str(e))}

    def after_save(self, key, table, model_ref, status) -> dict:
        _reload_personas(self.services, key)
        raw = self.files.read(key)
        return self.show(key, raw, table, model_ref, status, {self.ed.raw: raw, **self.history(key)})

    def on_file(self, key, model_ref):
        ed = self.ed
        try:
            raw = self.files.read(key)
            model_ref = self.services.registry.default_model(self.files.check(key, raw).model)
        except PlaygroundError as e:
            return {ed.raw: "", **self.failed(e)}
        return self.show(key, raw, None, model_ref, extra={
            ed.raw: raw, ed.model: model_ref, **self.history(key), ed.reply: "", ed.selected: None})

    def on_json(self, key, raw, table, model_ref):
        return self.show(key, raw, table, model_ref)

    def on_variables(self, table, key, raw, model_ref):
        return self.show(key, raw, table, model_ref)

    def on_model(self, model_ref, key, raw, table):
        return self.show(key, raw, table, model_ref)

    def on_messages(self, rows, key, raw, table, model_ref):
        try:
            updated = with_messages(raw, messages_from_rows(rows), key, self.files.model(key))
            self.files.check(key, updated)
        except PlaygroundError as e:
            return self.failed(e)
        return self.show(key, updated, table, model_ref, extra={self.ed.raw: updated})

    def shot(self, operation):
        def on_shot(key, raw, table, model_ref, row):
            try:
                messages, row = operation(self.files.check(key, raw).messages, row)
                updated = with_messages(raw, messages, key, self.files.model(key))
            except PlaygroundError as e:
                return self.failed(e)
            return self.show(key, updated, table, model_ref, extra={self.ed.raw: updated, self.ed.selected: row})
        return on_shot

    def on_pick_message(self, data: gr.SelectData):
        return data.index[0]

    def on_save(self, key, raw, table, model_ref):
        try:
            saved = save(self.services.store, self.files, key, raw)
        except PlaygroundError as e:
            return self.failed(e)
        n = saved.version.version
        return self.after_save(key, table, model_ref, f"Saved {key} as version {n}." if saved.changed
                               else f"No changes since version {n}: nothing to save.")

    def on_save_as(self, folder, name, raw, table, model_ref):
        try:
            key = key_for(folder, name)
            saved = save(self.services.store, self.files, key, raw, new=True)
        except PlaygroundError as e:
            return self.failed(e)
        return {**self.after_save(key, table, model_ref, f"Saved {key} as version {saved.version.version}."),
                self.ed.file: gr.update(choices=self.files.keys(), value=key)}

    def on_version(self, key, number):
        try:
            return {self.ed.diff: get_version(self.services.store, key, int(number)).diff, self.ed.status: ""}
        except PlaygroundError as e:
            return {self.ed.diff: "", **self.failed(e)}
        except (TypeError, ValueError):
            return {self.ed.diff: "", self.ed.status: error_notice("Pick a version number.")}

    def on_pick_version(self, key, data: gr.SelectData):
        number = data.row_value[0] if data.row_value else None
        return {self.ed.version: number, **self.on_version(key, number)}

    def on_restore(self, key, number, table, model_ref):
        try:
            number = int(number)
            saved = restore(self.services.store, self.files, key, number)
        except PlaygroundError as e:
            return self.failed(e)
        except (TypeError, ValueError):
            return {self.ed.status: error_notice("Pick the version to restore.")}
        return self.after_save(key, table, model_ref, f"Restored version {number} as version {saved.version.version}."
                               if saved.changed else f"Version {number} is already the current text.")

    def on_run(self, key, raw, table, model_ref):
        try:
            template = self.files.check(key, raw)
            values = values_for(template, dict(variable_rows(template, entered_values(table))))
            persona, settings, conversation = run_inputs(template, f"template:{key}", values, model_ref)
            for updated in coalesce(stream_reply(self.services, persona, settings, conversation)):
                yield reply_markdown(updated.turns[-1])
        except PlaygroundError as e:
            yield error_notice(str(e))

    def refresh_files(self, key):
        return gr.update(choices=self.files.keys(), value=key)

    def refresh_models(self, model_ref):
        return gr.update(choices=self.services.registry.choices(), value=model_ref)

    def refresh_versions(self, key, number):
        return gr.update(choices=[v.version for v in versions(self.services.store, key)], value=number)


def _wire_editor(services: Services, files: TemplateFiles, ed: Editor) -> None:
    on = EditorEvents(services, files, ed)
    view = [ed.file, ed.raw, ed.variables, ed.model]
    outputs = [*ed.view_outputs(), ed.file, ed.model, ed.versions, ed.version, ed.diff, ed.reply, ed.selected]
    live = {"trigger_mode": "always_last"}  # typing sends many events; only the latest text matters
    private = {"api_visibility": "private"}
    ed.file.input(on.on_file, [ed.file, ed.model], outputs, api_name="template_open")
    ed.file.focus(on.refresh_files, [ed.file], [ed.file], **private)
    ed.model.focus(on.refresh_models, [ed.model], [ed.model], **private)
    ed.raw.input(on.on_json, view, outputs, api_name="template_json", **live)
    ed.variables.input(on.on_variables, [ed.variables, ed.file, ed.raw, ed.model], outputs,
                       api_name="template_variables", **live)
    ed.model.change(on.on_model, [ed.model, ed.file, ed.raw, ed.variables], outputs, api_name="template_model", **live)
    ed.messages.input(on.on_messages, [ed.messages, *view], outputs, api_name="template_messages", **live)
    ed.messages.select(on.on_pick_message, None, ed.selected, **private)
    for name, operation in _shot_operations().items():
        ed.buttons[name].click(on.shot(operation), [*view, ed.selected], outputs, api_name=f"template_{name}")
    ed.buttons["save"].click(on.on_save, view, outputs, api_name="template_save")
    ed.buttons["save_as"].click(on.on_save_as, [ed.folder, ed.new_name, ed.raw, ed.variables, ed.model], outputs,
                                api_name="template_save_as")
    ed.versions.select(on.on_pick_version, [ed.file], outputs, **private)
    ed.version.focus(on.refresh_versions, [ed.file, ed.version], [ed.version], **private)
    ed.version.input(on.on_version, [ed.file, ed.version], outputs, api_name="template_version")
    ed.buttons["restore"].click(on.on_restore, [ed.file, ed.version, ed.variables, ed.model], outputs,
                                api_name="template_restore")
    run_event = ed.buttons["run"].click(on.on_run, view, [ed.reply], api_name="template_run")
    ed.buttons["stop"].click(None, None, None, cancels=[run_event])
