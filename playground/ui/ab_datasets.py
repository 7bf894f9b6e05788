"""A/B to datasets: "Add to dataset" for one column's conversation, and votes saved as preference (DPO) pairs."""

import gradio as gr

from ..ab.arena import LETTERS, Arena
from ..ab.to_dataset import add_vote_pairs
from ..chat.conversation import Conversation
from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..datasets.transcripts import ConversionOptions
from .ab_leaderboard import vote_filter
from .add_to_dataset import SYSTEM_CHOICES, TranscriptSource
from .format import error_notice
from .lists import dataset_names

VOTES_HINT = ("Every vote with a winner that the filters above select becomes preference pairs: the winning reply "
              "as *chosen* against each other reply as *rejected*, after the conversation that came before them. "
              "Export the dataset as OpenAI DPO or TRL preference in **Datasets**.")


def _column(arena: Arena | None, letter: str | None):
    """The column shown at `letter` in the current round, or None when there is no such column."""
    current = arena.current if arena else None
    index = LETTERS.index(letter) if letter in LETTERS else 0
    if current is None or index >= len(current.order):
        return None
    return arena.columns[current.order[index]]


def column_source(state: gr.State, changed: list) -> TranscriptSource:
    """The conversation of the column picked here, as the current round shows it (a letter, as in blind mode)."""
    slot = gr.Radio(list(LETTERS[:2]), value="A", label="Column",
                    info="The conversation shown at this letter becomes the example.")

    def conversation(arena, letter):
        if arena is not None and arena.current is not None and not arena.current.done:
            return None  # refreshed once the round is finished, not at every token
        column = _column(arena, letter)
        return column.conversation if column else Conversation()

    def settings(arena, letter):
        current = arena.current if arena else None
        if current is None:
            raise PlaygroundError("Send a message to the columns first: there is no reply to add yet.")
        if current.names_hidden:
            raise PlaygroundError("Vote first: an example records the model that wrote it, which would give the "
                                  "blind round away.")
        column = _column(arena, letter)
        if column is None:
            raise PlaygroundError(f"This comparison has no column {letter}: pick one of the columns shown.")
        return column.settings

    return TranscriptSource(inputs=[state, slot], conversation=conversation, settings=settings,
                            changed=[state, slot, *changed], controls=[slot])


def build_votes_to_dataset(services: Services, filters: list) -> None:
    """Below the leaderboard: save the votes its filters select as a preference dataset."""
    names = dataset_names(services)
    with gr.Accordion("Save votes as a preference (DPO) dataset", open=False,
                      elem_id="ab-votes-to-dataset") as accordion:
        gr.Markdown(VOTES_HINT)
        with gr.Row():
            dataset = gr.Dropdown(names, value=names[0] if names else None, label="Dataset", allow_custom_value=True)
            new_dataset = gr.Textbox(label="New dataset", placeholder="or type a name to create one")
        with gr.Row():
            system = gr.Radio(SYSTEM_CHOICES, value="deploy", label="The prompt's system message", scale=3)
            custom_system = gr.Textbox(label="Custom system prompt", lines=1, max_lines=6, scale=2,
                                       placeholder="Used when Custom is chosen")
        with gr.Row():
            keep_seeds = gr.Checkbox(False, label="Keep the persona's few-shot seed turns")
            speaker = gr.Checkbox(True, label="Prefix user turns with the speaker's name")
            keep_greeting = gr.Checkbox(False, label="Keep the greeting",
                                        info="Off: examples start with the user, not the persona's greeting.")
        save = gr.Button("Add the votes' pairs to the dataset", variant="primary")
        notice = gr.Markdown("", elem_id="ab-votes-notice")

    def on_save(chosen, new, system_choice, custom, seeds, prefix, greeting, blind_only, persona, since, until):
        name = (new or "").strip() or chosen
        try:
            if not name:
                raise PlaygroundError("Choose a dataset, or type a name for a new one.")
            options = ConversionOptions(system=system_choice or "deploy", custom_system=custom or "",
                                        keep_seed_turns=bool(seeds), speaker_prefix=bool(prefix),
                                        keep_greeting=bool(greeting))
            added = add_vote_pairs(services.store, name, services.personas,
                                   vote_filter(blind_only, persona, since, until), options)
        except PlaygroundError as e:
            return {notice: error_notice(str(e))}
        return {notice: added.describe(), dataset: gr.update(choices=dataset_names(services), value=name),
                new_dataset: ""}

    def on_open(chosen):
        names = dataset_names(services)
        return gr.update(choices=names, value=chosen if chosen in names else (names[0] if names else None))

    save.click(on_save, [dataset, new_dataset, system, custom_system, keep_seeds, speaker, keep_greeting, *filters],
               [notice, dataset, new_dataset], api_name="ab_votes_to_dataset")
    accordion.expand(on_open, [dataset], [dataset], api_visibility="private", show_progress="hidden")
