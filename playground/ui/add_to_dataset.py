"""The "Add to dataset" panel under the chat: the conversion options, a live preview of the example, then Save."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr

from ..chat.ask import ChatSettings
from ..chat.conversation import Conversation
from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..core.params import SamplingParams
from ..core.plural import plural
from ..datasets.examples import DEFAULT_MODEL, Example
from ..datasets.stats import example_tokens
from ..datasets.store import (
    DatasetExists,
    DatasetNotFound,
    add_new_examples,
    create_dataset,
    get_dataset,
)
from ..datasets.transcripts import ConversionOptions, example_from_conversation
from .chat_shared import ChatTab, parse_settings, reply_in_progress
from .format import error_notice
from .lists import dataset_names, snippet
from .params_form import control_values

SYSTEM_CHOICES = [
    ("Deploy prompt (the short one the fine-tune runs with)", "deploy"),
    ("The persona's prompt, as sent", "persona"),
    ("Custom", "custom"),
    ("None", "none"),
]
LAST_REPLY = -1  # the "up to" value meaning the whole chat


@dataclass
class AddToDataset:
    accordion: gr.Accordion
    dataset: gr.Dropdown
    new_dataset: gr.Textbox
    upto: gr.Dropdown
    system: gr.Radio
    custom_system: gr.Textbox
    keep_seeds: gr.Checkbox
    speaker: gr.Checkbox
    weight_disliked: gr.Checkbox
    keep_greeting: gr.Checkbox
    correct_turn: gr.Dropdown
    correct_text: gr.Textbox
    preview: gr.Code
    summary: gr.Markdown
    notice: gr.Markdown
    save: gr.Button
    revert: gr.Button
    edits: gr.State
    source: "TranscriptSource"


def reply_choices(conversation: Conversation) -> list[tuple[str, int]]:
    """(label, turn index) of every reply that answers a user turn, numbered as the chat shows them (from 1)."""
    choices, asked = [("The whole chat", LAST_REPLY)], False
    for i, turn in enumerate(conversation.turns):
        asked = asked or turn.role == "user"
        if turn.role == "assistant" and asked:
            choices.append((f"up to message {i + 1}: {snippet(turn.content) or '(no text)'}", i))
    return choices


def message_choices(conversation: Conversation) -> list[tuple[str, int]]:
    return [(f"{i + 1} · {t.role} · {snippet(t.content) or '(no text)'}", i) for i, t in enumerate(conversation.turns)]


def chat_settings(services: Services, persona, model, system_prompt, variables, speaker=None, owner=None) -> ChatSettings:
    """The chat's settings; sampling parameters do not change an example, so the defaults stand in for them."""
    return parse_settings(services, persona, model, system_prompt, variables, *control_values(SamplingParams()),
                          speaker, owner)


def current_edits(edits: dict, conversation: Conversation, turn, text) -> dict[int, str]:
    """The corrections made, plus the one being typed (it counts only if it differs from the message)."""
    made = dict(edits.get("edits", {})) if edits.get("conversation") == conversation.id else {}
    if isinstance(turn, (int, float)) and 0 <= int(turn) < len(conversation.turns) and text is not None:
        turn = int(turn)
        if text != conversation.turns[turn].content:
            made[turn] = text
        else:
            made.pop(turn, None)
    return made


def conversion_options(upto, system, custom_system, keep_seeds, speaker, weight_disliked, keep_greeting,
                       edits: dict[int, str]) -> ConversionOptions:
    upto = None if upto in (None, "", LAST_REPLY) else int(upto)
    return ConversionOptions(system=system or "deploy", custom_system=custom_system or "", keep_seed_turns=bool(keep_seeds),
                             speaker_prefix=bool(speaker), weight_disliked=bool(weight_disliked),
                             keep_greeting=bool(keep_greeting), upto_turn=upto, edits=edits)


def example_json(example: Example) -> str:
    """The example as JSON, one message per line so a long conversation stays readable."""
    messages = [json.dumps(m.model_dump(exclude_none=True), ensure_ascii=False) for m in example.messages]
    source = json.dumps(example.source.model_dump(exclude_defaults=True), ensure_ascii=False)
    return '{"messages": [\n  ' + ",\n  ".join(messages) + '\n],\n"source": ' + source + "}"


def example_summary(example: Example, edits: dict[int, str]) -> str:
    unweighted = sum(1 for m in example.messages if m.weight == 0)
    parts = [f"**{plural(len(example.messages), 'message')}**",
             f"{plural(example_tokens(example, DEFAULT_MODEL), 'token')} ({DEFAULT_MODEL})"]
    if unweighted:
        parts.append(f"{plural(unweighted, 'reply', 'replies')} with weight 0 (not trained on)")
    if edits:
        parts.append(f"{plural(len(edits), 'corrected message')}")
    return " · ".join(parts)


@dataclass
class TranscriptSource:
    """Where the panel reads its transcript: the components holding it, and how to read their values.

    Chat gives its own chat; A/B gives the conversation of the column picked in the panel."""

    inputs: list
    conversation: Callable[..., Conversation | None]  # None while a reply streams; empty when there is none
    settings: Callable[..., ChatSettings]  # raises PlaygroundError saying what to do first
    changed: list  # components whose change means the transcript may have changed
    controls: list = field(default_factory=list)  # the source's own controls, shown at the top of the panel


def chat_source(services: Services, chat: ChatTab) -> TranscriptSource:
    def conversation(state, *_):
        if reply_in_progress(state) is not None:
            return None  # refreshed once the reply is finished, not at every token
        return state

    return TranscriptSource(inputs=[chat.state, chat.persona, chat.model, chat.system_prompt, chat.variables,
                                    chat.speaker, chat.speaker_owner],
                            conversation=conversation,
                            settings=lambda _state, *chat_values: chat_settings(services, *chat_values),
                            changed=[chat.chatbot, chat.state])


def build_add_to_dataset(services: Services, make_source: Callable[[], TranscriptSource],
                         prefix: str = "") -> AddToDataset:
    """The panel, in an accordion; `make_source` is called inside it, so a source can add its own controls.
    `prefix` tells apart the API names and element ids of panels on different tabs."""
    names = dataset_names(services)
    with gr.Accordion("Add to dataset", open=False, elem_id=f"{prefix}add-to-dataset") as accordion:
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                source = make_source()
                with gr.Row():
                    dataset = gr.Dropdown(names, value=names[0] if names else None, label="Dataset",
                                          allow_custom_value=True)
                    new_dataset = gr.Textbox(label="New dataset", placeholder="or type a name to create one")
                upto = gr.Dropdown(reply_choices(Conversation()), value=LAST_REPLY, label="Up to reply",
                                   allow_custom_value=True, info="The example ends with this reply.")
                system = gr.Radio(SYSTEM_CHOICES, value="deploy", label="Example's system prompt")
                custom_system = gr.Textbox(label="Custom system prompt", lines=1, max_lines=6,
                                           placeholder="Used when Custom is chosen")
                keep_seeds = gr.Checkbox(False, label="Keep the persona's few-shot seed turns")
                speaker = gr.Checkbox(True, label="Prefix user turns with the speaker's name")
                weight_disliked = gr.Checkbox(True, label="Weight 0 on disliked replies")
                keep_greeting = gr.Checkbox(False, label="Keep the greeting",
                                        info="Off: examples start with the user, not the persona's greeting.")
            with gr.Column(scale=3, min_width=360):
                summary = gr.Markdown("")
                preview = gr.Code("", language="json", label="Preview of the example", interactive=False,
                                  lines=6, max_lines=18, wrap_lines=True,
                                  elem_id=f"{prefix}example-preview")
                with gr.Row():
                    correct_turn = gr.Dropdown([], value=None, label="Correct a message", allow_custom_value=True,
                                               scale=4, info="Pick a message and edit its text: a corrected reply "
                                                             "is trained on.")
                    revert = gr.Button("Revert corrections", size="sm", scale=1)
                correct_text = gr.Textbox(label="Corrected text", lines=3, max_lines=12)
                save = gr.Button("Save to dataset", variant="primary")
                notice = gr.Markdown("")
    edits = gr.State({})
    panel = AddToDataset(accordion, dataset, new_dataset, upto, system, custom_system, keep_seeds, speaker,
                         weight_disliked, keep_greeting, correct_turn, correct_text, preview, summary, notice, save, revert,
                         edits, source)
    _wire(services, panel, prefix.replace("-", "_"))
    return panel


@dataclass
class PanelValues:
    """The panel's inputs, in the order `inputs` lists them: the source's, then the panel's own."""

    source: tuple
    conversation: Conversation | None  # None while a reply is streaming
    upto: object
    options: tuple  # system, custom system, seeds, speaker, weight on disliked, greeting
    edits: dict
    turn: object
    text: str | None

    @classmethod
    def of(cls, source: TranscriptSource, values) -> "PanelValues":
        n = len(source.inputs)
        given, (upto, *rest) = tuple(values[:n]), values[n:]
        return cls(given, source.conversation(*given), upto, tuple(rest[:6]), rest[6] or {}, rest[7], rest[8])

    def made_edits(self) -> dict[int, str]:
        return current_edits(self.edits, self.conversation, self.turn, self.text)

    def saved_edits(self) -> dict[int, str]:
        return dict(self.edits.get("edits", {})) if self.edits.get("conversation") == self.conversation.id else {}

    def turn_index(self) -> int | None:
        turn = self.turn
        return int(turn) if isinstance(turn, (int, float)) and 0 <= turn < len(self.conversation.turns) else None


def _wire(services: Services, p: AddToDataset, api_prefix: str) -> None:
    source = p.source
    option_inputs = [p.upto, p.system, p.custom_system, p.keep_seeds, p.speaker, p.weight_disliked, p.keep_greeting]
    inputs = [*source.inputs, *option_inputs, p.edits, p.correct_turn, p.correct_text]
    previews = [p.preview, p.summary, p.edits]

    def values(raw) -> PanelValues:
        v = PanelValues.of(source, raw)
        if v.conversation is None:
            raise PlaygroundError("Wait for the reply to finish, then add it.")
        return v

    def convert(v: PanelValues) -> tuple[Example, dict]:
        made = v.made_edits()
        settings = source.settings(*v.source)
        options = conversion_options(v.upto, *v.options, made)
        example = example_from_conversation(services.personas[settings.persona], settings, v.conversation, options)
        return example, {"conversation": v.conversation.id, "edits": made}

    def preview(v: PanelValues) -> dict:
        try:
            example, edits = convert(v)
        except PlaygroundError as e:
            return {p.preview: "", p.summary: error_notice(str(e))}
        return {p.preview: example_json(example), p.summary: example_summary(example, edits["edits"]), p.edits: edits}

    def picked(v: PanelValues, turn: int | None) -> dict:
        """Show message `turn` (as corrected so far) in the correction box."""
        v.turn = turn
        v.text = None if turn is None else v.saved_edits().get(turn, v.conversation.turns[turn].content)
        return {p.correct_turn: gr.update(value=turn), p.correct_text: v.text or "", **preview(v)}

    def on_preview(*raw):
        try:
            return preview(values(raw))
        except PlaygroundError as e:
            return {p.preview: "", p.summary: error_notice(str(e))}

    def when_finished(handler):
        """The handler, given the panel's values; while a reply is streaming it changes nothing (it runs again
        once the reply is finished, not at every token)."""
        def run(*raw):
            v = PanelValues.of(source, raw)
            # A dict naming one output, left as it is: Gradio rejects an empty dict as a missing value for each output.
            return {p.preview: gr.skip()} if v.conversation is None else handler(v)
        return run

    @when_finished
    def on_chat_changed(v: PanelValues):
        if v.edits.get("conversation") != v.conversation.id:
            v.edits, v.turn, v.text = {}, None, None
        choices = reply_choices(v.conversation)
        if v.upto not in [value for _, value in choices]:
            v.upto = LAST_REPLY
        turn = v.turn_index()
        if turn is None:
            v.turn, v.text = None, None
        return {p.upto: gr.update(choices=choices, value=v.upto), **preview(v),
                p.correct_turn: gr.update(choices=message_choices(v.conversation), value=turn),
                **({} if turn is not None else {p.correct_text: ""})}

    @when_finished
    def on_pick_message(v: PanelValues):
        v.edits = {"conversation": v.conversation.id, "edits": v.saved_edits()}
        return picked(v, v.turn_index())

    @when_finished
    def on_upto(v: PanelValues):
        v.edits = {"conversation": v.conversation.id, "edits": v.made_edits()}
        return picked(v, None if v.upto in (None, LAST_REPLY) else int(v.upto))

    @when_finished
    def on_revert(v: PanelValues):
        v.edits = {}
        return picked(v, v.turn_index())

    def on_save(dataset, new_dataset, *raw):
        try:
            example, edits = convert(values(raw))
            name = target_dataset(services, dataset, new_dataset)
            report = add_new_examples(services.store, name, [example])
        except PlaygroundError as e:
            return {p.notice: error_notice(str(e))}
        info = get_dataset(services.store, name)
        size = f"({plural(info.examples, 'example')}, {info.tokens:,} tokens)"
        saved = (f"Saved as example {report.added[0]} in **{name}** {size}." if report.added else
                 f"Not saved: this example is already in the dataset **{name}** {size}.")
        return {p.notice: saved,
                p.dataset: gr.update(choices=dataset_names(services), value=name), p.new_dataset: "", p.edits: edits}

    def on_open(dataset, *raw):
        names = dataset_names(services)
        current = dataset if dataset in names else (names[0] if names else None)
        return {p.dataset: gr.update(choices=names, value=current), p.notice: "", **on_chat_changed(*raw)}

    quiet = {"api_visibility": "private", "show_progress": "hidden", "trigger_mode": "always_last"}
    picks = [p.correct_turn, p.correct_text, *previews]
    refreshed = [p.upto, *picks]
    # API clients have no browser to fire the events below; this one shows them the example Save would store.
    p.system.input(on_preview, inputs, previews, api_name=f"{api_prefix}preview_example",
                   show_progress="hidden", trigger_mode="always_last")
    for component in option_inputs[3:]:
        component.input(on_preview, inputs, previews, **quiet)
    # Textboxes use .change: Gradio's .input did not fire for text filled in at once (seen with Playwright's fill).
    for component in (p.custom_system, p.correct_text):
        component.change(on_preview, inputs, previews, **quiet)
    p.upto.input(on_upto, inputs, picks, **quiet)
    p.correct_turn.input(on_pick_message, inputs, picks, **quiet)
    p.revert.click(on_revert, inputs, picks, api_visibility="private")
    p.save.click(on_save, [p.dataset, p.new_dataset, *inputs], [p.notice, p.dataset, p.new_dataset, p.edits],
                 api_name=f"{api_prefix}add_to_dataset")
    # The source's own events update the transcript; the panel follows once a reply is finished.
    for component in source.changed:
        component.change(on_chat_changed, inputs, refreshed, **quiet)
    p.accordion.expand(on_open, [p.dataset, *inputs], [p.dataset, p.notice, *refreshed], **quiet)


def target_dataset(services: Services, dataset: str | None, new_dataset: str | None) -> str:
    """The dataset to add to: a new name is created (or, if it exists, used); else the one chosen."""
    name = (new_dataset or "").strip()
    if name:
        try:
            create_dataset(services.store, name)
        except DatasetExists:
            pass
        return name
    if not dataset:
        raise PlaygroundError("Choose a dataset, or type a name for a new one.")
    try:
        get_dataset(services.store, dataset)
    except DatasetNotFound:
        raise PlaygroundError(f"The dataset '{dataset}' no longer exists: choose another or type a new name.") from None
    return dataset
