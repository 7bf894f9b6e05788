"""Generate data: chunk a folder of facts, run a generation template per chunk, review the pairs, add them to a dataset."""

from dataclasses import dataclass

import gradio as gr

from ..chat.services import Services
from ..core.errors import PlaygroundError, UnknownModel
from ..core.plural import plural
from ..datasets.examples import DEFAULT_MODEL
from ..datasets.store import list_datasets
from ..templates.generation import QA, Generation, Pair, add_to_dataset, chunk_folder, generate
from ..templates.store import TemplateFiles, snapshot
from .format import error_notice
from .template_format import table_rows

GENERATION_TEMPLATE = "templates/generate_qa.json"
CHUNK_HEADERS = ["file", "chunk", "line", "tokens", "starts with"]
PAIR_HEADERS = ["add", "prompt", "completion", "I don't know", "chunk"]


def chunk_rows(chunks) -> list[list]:
    return [[c.file, c.index, c.line, c.tokens, c.text[:80].replace("\n", " ")] for c in chunks]


def pair_rows(pairs: list[Pair]) -> list[list]:
    return [[True, p.qa.prompt, p.qa.completion, p.qa.declines, p.chunk.label] for p in pairs]


def chosen_pairs(generation: Generation | None, rows) -> list[Pair]:
    """The ticked rows as pairs, with any edits made to their text in the table."""
    if generation is None or not generation.pairs:
        raise PlaygroundError("Generate some pairs first.")
    rows = table_rows(rows)
    if len(rows) != len(generation.pairs):
        raise PlaygroundError("The pairs table no longer matches the generated pairs (rows were added or removed): "
                              "generate again, and untick rows instead of deleting them.")
    return [Pair(QA(str(row[1]).strip(), str(row[2]).strip()), pair.chunk, pair.exchange_id)
            for row, pair in zip(rows, generation.pairs) if row[0] in (True, 1, "true", "True")]


def _summary(generation: Generation, chunks: int) -> str:
    pairs = generation.pairs
    declines = sum(p.qa.declines for p in pairs)
    cost = f"${generation.cost_usd:.4f}" if generation.cost_usd is not None else "no price set"
    text = (f"**{plural(len(pairs), 'pair')}** ({declines} \"I don't know\") from {plural(chunks, 'chunk')} with "
            f"{generation.provenance.template} v{generation.provenance.version} on {generation.provenance.model} · {cost}")
    problems = generation.problems()
    if problems:
        text += f"\n\n⚠️ {plural(len(problems), 'problem')} (skipped):\n" + "\n".join(
            f"- {p}" for p in problems[:50])
    return text


@dataclass
class Panel:
    folder: gr.Textbox
    size: gr.Number
    overlap: gr.Number
    chunks: gr.Dataframe
    template: gr.Dropdown
    model: gr.Dropdown
    count: gr.Number
    concurrency: gr.Slider
    status: gr.Markdown
    pairs: gr.Dataframe
    dataset: gr.Dropdown
    system_prompt: gr.Textbox
    generation: gr.State
    buttons: dict


def build_generation_panel(services: Services, files: TemplateFiles) -> None:
    panel = _layout(services, files)
    on = GenerationEvents(services, files, panel)
    chunking = [panel.folder, panel.size, panel.overlap]
    panel.buttons["read"].click(on.on_read, [*chunking, panel.model], [panel.chunks, panel.status],
                                api_name="generation_chunks")
    panel.buttons["generate"].click(
        on.on_generate, [*chunking, panel.template, panel.model, panel.count, panel.concurrency],
        [panel.pairs, panel.generation, panel.status, panel.chunks], api_name="generation_run")
    panel.buttons["add"].click(on.on_add, [panel.generation, panel.pairs, panel.dataset, panel.system_prompt],
                               [panel.status, panel.dataset], api_name="generation_add")
    panel.dataset.focus(on.refresh_datasets, [panel.dataset], [panel.dataset], api_visibility="private")
    panel.model.focus(on.refresh_models, [panel.model], [panel.model], api_visibility="private")


def _layout(services: Services, files: TemplateFiles) -> Panel:
    keys = [k for k in files.keys() if k.startswith("templates/")]
    default = GENERATION_TEMPLATE if GENERATION_TEMPLATE in keys else (keys[0] if keys else None)
    gr.Markdown("Turn a folder of facts into question/answer pairs: each chunk is sent as `{{facts}}`, "
                "with the number of pairs as `{{n}}`.")
    with gr.Row():
        folder = gr.Textbox(label="Folder of facts", placeholder="/path/to/notes (its .txt and .md files)", scale=3)
        size = gr.Number(400, label="Chunk size (tokens)", precision=0, minimum=8)
        overlap = gr.Number(40, label="Overlap (tokens)", precision=0, minimum=0)
        read = gr.Button("Read folder", scale=0)
    chunks_table = gr.Dataframe(headers=CHUNK_HEADERS, label="Chunks", type="array", interactive=False, max_height=260)
    with gr.Row():
        template = gr.Dropdown(keys, value=default, label="Generation template", scale=2, min_width=240)
        # A callable: each page load picks a served chat model once the lists are in (lookup generates nothing).
        model = gr.Dropdown(services.registry.choices(), label="Model", allow_custom_value=True,
                            value=lambda: services.registry.default_model_once_listed(DEFAULT_MODEL),
                            elem_id="generation-model", scale=2, min_width=240)
        count = gr.Number(5, label="Pairs per chunk", precision=0, minimum=1, maximum=50)
        concurrency = gr.Slider(1, 16, value=4, step=1, label="Parallel calls")
        go = gr.Button("Generate", variant="primary", scale=0)
    status = gr.Markdown("", elem_id="generation-status")
    pairs_table = gr.Dataframe(headers=PAIR_HEADERS, label="Generated pairs: untick what to leave out, fix text in place",
                               type="array", interactive=True, wrap=True, datatype=["bool", "str", "str", "bool", "str"],
                               column_widths=["6%", "35%", "35%", "10%", "14%"], static_columns=[3, 4])
    with gr.Row():
        dataset = gr.Dropdown([d.name for d in list_datasets(services.store)], label="Dataset", allow_custom_value=True,
                              info="Choose one, or type a new name to create it.", elem_id="generation-dataset")
        system_prompt = gr.Textbox(label="System prompt for the examples (optional)",
                                   info="The short prompt the fine-tune will be deployed with.")
        add = gr.Button("Add selected to dataset", variant="primary", scale=0)
    return Panel(folder, size, overlap, chunks_table, template, model, count, concurrency, status, pairs_table,
                 dataset, system_prompt, gr.State(None), {"read": read, "generate": go, "add": add})


class GenerationEvents:
    def __init__(self, services: Services, files: TemplateFiles, panel: Panel):
        self.services, self.files, self.panel = services, files, panel

    def tokens_model(self, model_ref: str) -> str:
        try:
            return self.services.registry.resolve(model_ref)[1]
        except UnknownModel:
            return DEFAULT_MODEL

    def chunks(self, path, size, overlap, model_ref):
        return chunk_folder(path, int(size or 0), int(overlap or 0), self.tokens_model(model_ref))

    def on_read(self, path, size, overlap, model_ref):
        try:
            chunks, problems = self.chunks(path, size, overlap, model_ref)
        except PlaygroundError as e:
            return [], error_notice(str(e))
        files_read = len({c.file for c in chunks})
        note = (f"{plural(len(chunks), 'chunk')} from {plural(files_read, 'file')}, "
                f"{plural(sum(c.tokens for c in chunks), 'token')}.")
        return chunk_rows(chunks), note + "".join(f"\n- ⚠️ {p}" for p in problems)

    def on_generate(self, path, size, overlap, key, model_ref, n, parallel, progress=gr.Progress()):
        p = self.panel
        try:
            chunks, _ = self.chunks(path, size, overlap, model_ref)
            template = self.files.load(key)
            version = snapshot(self.services.store, self.files, key)
            progress((0, len(chunks)), desc="Generating", unit="chunks")
            result = generate(self.services, template, chunks, model_ref, template_key=key,
                              template_version=version.version, pairs_per_chunk=int(n or 1),
                              concurrency=int(parallel or 1),
                              on_progress=lambda done, total: progress((done, total), desc="Generating", unit="chunks"))
        except PlaygroundError as e:
            return {p.status: error_notice(str(e))}
        return {p.pairs: pair_rows(result.pairs), p.generation: result, p.status: _summary(result, len(chunks)),
                p.chunks: chunk_rows(chunks)}

    def on_add(self, result, rows, name, system_prompt):
        p = self.panel
        try:
            if not (name or "").strip():
                raise PlaygroundError("Choose a dataset, or type a name for a new one.")
            report = add_to_dataset(self.services.store, name, chosen_pairs(result, rows), result.provenance,
                                    system_prompt or "")
        except PlaygroundError as e:
            return {p.status: error_notice(str(e))}
        return {p.status: report.summary(f"the dataset '{report.dataset}'") + ".",
                p.dataset: self.refresh_datasets(name.strip())}

    def refresh_datasets(self, current):
        return gr.update(choices=[d.name for d in list_datasets(self.services.store)], value=current)

    def refresh_models(self, model_ref):
        return gr.update(choices=self.services.registry.choices(), value=model_ref)
