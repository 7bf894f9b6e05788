"""A/B tab: 2-4 column setups, one message streamed to all of them at once, blind votes, a leaderboard, batches."""

from dataclasses import dataclass

import gradio as gr

from ..ab import arena as ab
from ..ab.arena import LETTERS, MAX_COLUMNS, Arena, ArenaColumn, Ballot
from ..chat.ask import ChatSettings, check_message
from ..chat.personas import persona_order
from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..core.params import PARAM_NAMES, SamplingParams
from ..providers.registry import LIST_WAIT_S
from .ab_batch import build_batch
from .ab_datasets import build_votes_to_dataset, column_source
from .ab_leaderboard import build_leaderboard
from .add_to_dataset import build_add_to_dataset
from .format import MESSAGE_KEYS, error_notice, to_chatbot
from .params_form import build_controls, control_values, parse_params

STOP_WAIT_S = 3.0  # how long Stop waits for the stopped streams to log their partial replies
START_HINT = ("Send one message to every column: the replies stream side by side. In blind mode the columns are "
              "shuffled every round and their names stay hidden until you vote.")


@dataclass
class ColumnSetup:
    """One column's controls: everything a chat needs, plus an optional name for the leaderboard."""

    group: gr.Column
    label: gr.Textbox
    persona: gr.Dropdown
    model: gr.Dropdown
    system_prompt: gr.Textbox
    params: list

    @property
    def inputs(self) -> list:
        return [self.label, self.persona, self.model, self.system_prompt, *self.params]


PER_COLUMN = 4 + len(PARAM_NAMES)


def build_setup(services: Services, index: int, persona_name: str | None, model_ref: str) -> ColumnSetup:
    """One column's controls, starting on the given persona (its prompt and parameters) and model."""
    names = persona_order(services.personas)
    start = services.personas.get(persona_name)
    with gr.Column(visible=index < 2, min_width=240) as group:
        gr.Markdown(f"**Column {index + 1}**")
        label = gr.Textbox(label="Label", placeholder="optional: its name on the leaderboard", max_lines=1)
        persona = gr.Dropdown(names, value=persona_name, label="Persona")
        model = gr.Dropdown(services.registry.choices(), value=model_ref, label="Model", allow_custom_value=True)
        system_prompt = gr.Textbox(start.system_prompt if start else "", label="System prompt", lines=3, max_lines=5)
        with gr.Accordion("Parameters", open=False):
            controls = build_controls(start.params if start else None)
    return ColumnSetup(group, label, persona, model, system_prompt, [controls[n] for n in PARAM_NAMES])


def setup_values(services: Services, persona_name: str | None, model_ref: str) -> list:
    """What a column's persona, model, system prompt and parameter controls show for a starting setup."""
    start = services.personas.get(persona_name)
    return [gr.update(value=persona_name), gr.update(choices=services.registry.choices(), value=model_ref),
            start.system_prompt if start else "", *control_values(start.params if start else SamplingParams())]


def parse_columns(count: int, values: list) -> list[ArenaColumn]:
    """The first `count` setups from the controls' values; a bad parameter is reported with its column."""
    columns, problems = [], []
    for i in range(count):
        label, persona, model, system_prompt, *params = values[i * PER_COLUMN:(i + 1) * PER_COLUMN]
        try:
            parsed = parse_params(params)
        except PlaygroundError as e:
            problems.append(f"Column {i + 1}: {e}")
            continue
        settings = ChatSettings(persona=persona or "", model=(model or "").strip(), system_prompt=system_prompt or "",
                                params=parsed)
        columns.append(ArenaColumn(settings=settings, label=label or ""))
    if problems:
        raise PlaygroundError("Not sent. " + " ".join(problems))
    return columns


def panel_label(arena: Arena | None, slot: int) -> str:
    current = arena.current if arena else None
    if current is None or slot >= len(current.order) or current.names_hidden:
        return LETTERS[slot]
    column = current.order[slot]
    return f"{LETTERS[slot]} · Column {column + 1} · {current.replies[column].contestant}"


def round_markdown(arena: Arena | None) -> str:
    current = arena.current if arena else None
    if current is None:
        return START_HINT
    head = f"**Round {current.number}**"
    sighted = "" if current.anonymous or not current.blind else (
        " Names were shown earlier in this comparison, so this vote counts as sighted; start a **New comparison** "
        "for blind votes.")
    if not current.done:
        return f"{head} · the replies are streaming…"
    if current.failed:
        slots = ", ".join(current.slot(r.column) for r in current.failed)
        return f"{head} · the reply in {slots} failed or was stopped, so this round cannot be judged."
    if current.vote is None and current.blind:
        return f"{head} · blind: which setup is which stays hidden until you vote.{sighted}"
    names = " · ".join(f"{LETTERS[s]} was **{current.replies[c].contestant}** (Column {c + 1})"
                       for s, c in enumerate(current.order))
    if current.vote is None:
        return f"{head} · blind mode is off, so names are shown and a vote counts as sighted. {names}"
    return f"{head} · you voted **{current.vote.describe(len(current.order))}**. {names}"


def vote_labels(count: int) -> list[str]:
    """Labels of the A-D buttons, then of Tie and Both bad: with more than two columns, pick the best."""
    word = "better" if count == 2 else "best"
    return [f"{letter} is {word}" for letter in LETTERS] + ["Tie", "Both bad" if count == 2 else "None is good"]


def build_ab_tab(services: Services) -> list[gr.Dropdown]:
    """The tab; returns its columns' persona dropdowns, for the app to refresh when personas change."""
    runs: dict[str, ab.RoundRun] = {}  # rounds in flight, for Stop; per app, emptied as each round ends

    state = gr.State(None)
    with gr.Column(elem_id="ab-tab"):
        with gr.Row():
            count = gr.Radio([2, 3, 4], value=2, label="Columns", scale=1)
            blind = gr.Checkbox(True, label="Blind", scale=3,
                                info="Shuffle the columns every round and hide their names until you vote.")
        with gr.Accordion("Column setup", open=True, elem_id="ab-column-setup") as column_setup:
            with gr.Row(equal_height=False):
                setups = [build_setup(services, i, *setup) for i, setup in enumerate(ab.starting_setups(services))]
        with gr.Tabs():
            with gr.Tab("Compare", id="ab-compare") as compare_tab:
                with gr.Row(equal_height=True):
                    chatbots = [gr.Chatbot([], label=LETTERS[i], height=420, buttons=["copy"], visible=i < 2,
                                           group_consecutive_messages=False, elem_id=f"ab-chat-{LETTERS[i].lower()}")
                                for i in range(MAX_COLUMNS)]
                round_info = gr.Markdown(START_HINT, label="Round", elem_id="ab-round")
                notice = gr.Markdown("", label="Notice", elem_id="ab-notice")
                with gr.Row():
                    # lines=1 with max_lines>1: Enter sends, Shift+Enter adds a line (see format.MESSAGE_HINT).
                    message = gr.Textbox(label="Message", placeholder=f"One message to every column. {MESSAGE_KEYS}",
                                         lines=1, max_lines=10, scale=6)
                    with gr.Column(scale=1, min_width=100):
                        send = gr.Button("Send", variant="primary")
                        stop = gr.Button("Stop", variant="stop")
                        new = gr.Button("New comparison")
                labels = vote_labels(2)
                with gr.Row():
                    better = [gr.Button(labels[i], visible=i < 2) for i in range(MAX_COLUMNS)]
                    tie = gr.Button(labels[4])
                    bothbad = gr.Button(labels[5])
                with gr.Row():
                    scores = [gr.Radio([1, 2, 3, 4, 5], value=None, label=f"Score {LETTERS[i]} (optional)",
                                       visible=i < 2) for i in range(MAX_COLUMNS)]
                reason = gr.Textbox(label="Reason (optional)", placeholder="Why one reply is better", max_lines=3)
                to_dataset = build_add_to_dataset(services, lambda: column_source(state, chatbots), prefix="ab-")
                [slot] = to_dataset.source.controls
            with gr.Tab("Leaderboard", id="ab-leaderboard") as board_tab:
                board = build_leaderboard(services)
                build_votes_to_dataset(services, board.inputs)
            with gr.Tab("Batch", id="ab-batch") as batch_tab:
                build_batch(services, setups, count, parse_columns)

    setup_inputs = [c for setup in setups for c in setup.inputs]

    def show(arena: Arena | None) -> dict:
        updates = {round_info: round_markdown(arena)}
        for slot, chatbot in enumerate(chatbots):
            if arena is None or slot >= len(arena.columns) or arena.current is None:
                updates[chatbot] = gr.Chatbot(value=[], label=LETTERS[slot])
                continue
            conversation, _ = ab.shown_conversation(arena, slot)
            updates[chatbot] = gr.Chatbot(value=to_chatbot(conversation), label=panel_label(arena, slot))
        return updates

    def on_send(text, arena, blind_mode, columns_count, *values):
        try:
            check_message(text)
            prepared = ab.prepare(services, arena, parse_columns(int(columns_count), list(values)))
            current = ab.new_round(services, prepared, text, blind=bool(blind_mode))
        except PlaygroundError as e:
            gr.Warning(str(e))
            # Every output is given, so an API client gets the columns and its text back, not "no change" markers.
            yield {**show(arena), state: arena, message: text, notice: error_notice(str(e))}
            return
        arena = prepared
        run = runs[current.id] = ab.RoundRun(services, arena, current, on_done=lambda r: runs.pop(r.round.id, None))
        yield {**show(arena), state: arena, message: "", notice: ""}
        # The box is left alone while streaming: the user may already be typing the next message.
        for updated in run.start().updates():
            yield {**show(updated), state: updated, notice: ""}
        yield from _after_round(arena, text)

    def _after_round(arena: Arena, text: str):
        current = arena.current
        if not current.failed:
            return
        problems = " ".join(f"{current.slot(r.column)}: {r.error or 'no reply'}" for r in current.failed)
        gr.Warning(problems)
        if len(current.failed) == len(current.replies) and not any(
                arena.columns[r.column].conversation.turns[-1].content for r in current.replies):
            # Nothing came back at all: take the round out (the log keeps it) and give the text back to resend.
            for column in arena.columns:
                del column.conversation.turns[-2:]
            arena.rounds.pop()
            yield {**show(arena), state: arena, message: text, notice: error_notice(problems)}
            return
        yield {**show(arena), state: arena, message: "", notice: error_notice(problems)}

    def on_stop(arena):
        current = arena.current if arena else None
        run = runs.get(current.id) if current else None
        if run is not None:
            run.stop(STOP_WAIT_S)
        return {**show(arena), state: arena}

    def on_new():
        return {**show(None), state: None, notice: "", message: ""}

    def make_vote(outcome: str, winner: str | None = None):
        def on_vote(arena, why, *given):
            current = arena.current if arena else None
            shown = len(current.order) if current else 0
            ballot = Ballot(outcome=outcome, winner=winner, reason=why or "",
                            scores={LETTERS[i]: int(s) for i, s in enumerate(given[:shown]) if s not in (None, "")})
            try:
                ab.cast_vote(services, arena, ballot)
            except PlaygroundError as e:
                gr.Warning(str(e))
                return {**show(arena), state: arena, notice: error_notice(str(e)), reason: why,
                        **dict(zip(scores, given))}
            return {**show(arena), state: arena, notice: "", reason: "", **{s: None for s in scores}}
        return on_vote

    def on_count(columns_count):
        n = int(columns_count)
        names = vote_labels(n)
        return {**{s.group: gr.Column(visible=i < n) for i, s in enumerate(setups)},
                **{c: gr.Chatbot(value=[], label=LETTERS[i], visible=i < n) for i, c in enumerate(chatbots)},
                **{s: gr.Radio(value=None, visible=i < n) for i, s in enumerate(scores)},
                **{b: gr.Button(names[i], visible=i < n) for i, b in enumerate(better)},
                tie: gr.Button(names[4]), bothbad: gr.Button(names[5]),
                slot: gr.Radio(list(LETTERS[:n]), value="A"),
                state: None, round_info: START_HINT, notice: ""}

    def on_persona(name, picked):
        persona = services.personas.get(name)
        if persona is None:
            return [gr.update()] * (2 + len(PARAM_NAMES))
        return [gr.update(value=services.registry.after_persona_change(persona.model, picked)), persona.system_prompt,
                *control_values(persona.params)]

    shown_outputs = [*chatbots, round_info]
    send_outputs = [*shown_outputs, state, message, notice]
    send_inputs = [message, state, blind, count, *setup_inputs]
    send_event = send.click(on_send, send_inputs, send_outputs, api_name="ab_send")
    submit_event = message.submit(on_send, send_inputs, send_outputs, api_visibility="private")
    # The frontend cancels a stream only once the Stop listener has finished, so cancel first, then stop the threads.
    stop.click(None, None, None, cancels=[send_event, submit_event]).then(
        on_stop, [state], [*shown_outputs, state], api_name="ab_stop")
    new.click(on_new, None, [*shown_outputs, state, notice, message], api_name="ab_new")
    for chatbot in chatbots:  # a panel's own Clear (bin) button starts a new comparison, not just a blank panel
        chatbot.clear(on_new, None, [*shown_outputs, state, notice, message], api_visibility="private")
    vote_outputs = [*shown_outputs, state, notice, reason, *scores]
    choices = [("better", letter) for letter in LETTERS] + [("tie", None), ("bothbad", None)]
    for button, (outcome, winner) in zip([*better, tie, bothbad], choices):
        name = f"ab_vote_{(winner or outcome).lower()}"
        button.click(make_vote(outcome, winner), [state, reason, *scores], vote_outputs, api_name=name)
    count.change(on_count, [count], [*(s.group for s in setups), *chatbots, *scores, *better, tie, bothbad, slot,
                                     state, round_info, notice], api_visibility="private")
    for setup in setups:
        setup.persona.input(on_persona, [setup.persona, setup.model], [setup.model, setup.system_prompt, *setup.params],
                            api_visibility="private")
    # The column setup folds away on the Leaderboard and Batch views, where it pushed the view down (Batch still
    # runs the setups: one click opens them), and opens again on Compare.
    for view, show_setup in ((compare_tab, True), (board_tab, False), (batch_tab, False)):
        view.select(lambda open_=show_setup: gr.Accordion(open=open_), None, [column_setup],
                    api_visibility="private", show_progress="hidden")
    # The leaderboard is refitted when it is opened (a vote is cast on another sub-tab), not after every vote.
    board_tab.select(board.refresh, board.inputs, board.outputs, api_visibility="private")
    root = gr.context.Context.root_block
    if root is not None:
        # Model lists arrive in the background after startup: once they have, each new page starts every column
        # on a served model (lookup only when none answers), no two columns alike.
        def on_load():
            services.registry.listed.wait(LIST_WAIT_S)
            return [v for i, setup in enumerate(ab.starting_setups(services)) for v in setup_values(services, *setup)]

        root.load(on_load, None, [c for s in setups for c in (s.persona, s.model, s.system_prompt, *s.params)],
                  api_visibility="private", show_progress="hidden")
    return [s.persona for s in setups]
