"""Chat tab: pick a persona and a model, tune the request, stream replies with their metrics."""

import time
from pathlib import Path

import gradio as gr

from ..chat.ask import STOPPED, ChatSettings, check_message, stream_reply
from ..chat.cards import import_persona
from ..chat.conversation import Conversation, Turn
from ..chat.personas import persona_order
from ..chat.services import Services
from ..core.coalesce import coalesce
from ..core.errors import PlaygroundError
from ..core.params import PARAM_NAMES
from .add_to_dataset import build_add_to_dataset, chat_source
from .chat_shared import ChatTab, parse_settings, reply_in_progress, speaker_info
from .format import MESSAGE_HINT, error_notice, text_of, to_chatbot
from .params_form import build_controls, control_values

STOP_WAIT_S = 3.0  # how long Stop waits for the cancelled stream to log the partial reply


def variable_rows(persona, settings_variables: dict | None = None) -> list[list[str]]:
    values = {**persona.variables, **(settings_variables or {})}
    return [[name, values.get(name, "")] for name in persona.variable_names()] or [["", ""]]


def wait_until_logged(conversation: Conversation, index: int, timeout: float) -> bool:
    """Wait for the stream writing into `conversation` to finish the reply at `index` (it sets the metrics last)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(conversation.turns) > index and conversation.turns[index].metrics:
            return True
        time.sleep(0.05)
    return False


def build_chat_tab(services: Services) -> ChatTab:
    names = persona_order(services.personas)
    first = services.personas[names[0]] if names else None
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            persona = gr.Dropdown(names, value=first.name if first else None, label="Persona",
                                  info=first.description if first else "No personas found.")
            model = gr.Dropdown(services.registry.choices(), value=services.registry.default_model(first and first.model),
                                label="Model", allow_custom_value=True,
                                info="Pick, or type any model name (provider:model for a specific endpoint).")
            refresh = gr.Button("Refresh models", size="sm")
            system_prompt = gr.Textbox(first.system_prompt if first else "", label="System prompt", lines=6, max_lines=14)
            variables = gr.Dataframe(variable_rows(first) if first else [["", ""]], headers=["variable", "value"],
                                     label="Variables", type="array", interactive=True, column_count=2)
            with gr.Accordion("Parameters", open=False):
                controls = build_controls(first.params if first else None)
            with gr.Accordion("Import a character card", open=False):
                card = gr.File(label="Character Card V2 (.json, or .png with the card inside)",
                               file_types=[".json", ".png"], type="filepath")
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(to_chatbot(Conversation.start(first.greeting if first else "")), label="Chat",
                                 editable="user", height=520, buttons=["copy"],
                                 feedback_options=["Like", "Dislike"], group_consecutive_messages=False)
            notice = gr.Markdown("", elem_id="chat-notice")
            with gr.Row():
                # lines=1 with max_lines>1: Gradio's box sends on Enter and adds a line on Shift+Enter (lines>1 swaps them).
                message = gr.Textbox(label="Message", placeholder=MESSAGE_HINT,
                                     lines=1, max_lines=10, scale=6, autofocus=True)
                # The persona's speaker made visible: who the user is speaking as, sent as "Name: " on each turn.
                speaker = gr.Textbox(first.speaker or "" if first else "", label="Speaking as", max_lines=1,
                                     scale=2, min_width=160, placeholder="no name", elem_id="chat-speaker",
                                     info=speaker_info(first.speaker if first else None))
                with gr.Column(scale=1, min_width=100):
                    send = gr.Button("Send", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
                    new_chat = gr.Button("New chat")
    # A callable: Gradio calls it for every new session, so each visitor's chat gets its own conversation id
    # (a value would be deep-copied into every session, id and all, and their turns would share one row).
    state = gr.State(lambda: Conversation.start(first.greeting if first else ""))
    params = [controls[n] for n in PARAM_NAMES]
    # The speaker last: an API client that leaves it out gets the box's value (and older calls keep working).
    speaker_owner = gr.State(first.name if first else None)
    settings_inputs = [persona, model, system_prompt, variables, *params, speaker, speaker_owner]
    tab = ChatTab(chatbot, state, message, notice, persona, model, system_prompt, variables, params, speaker,
                  speaker_owner, settings_inputs)
    outputs = [chatbot, state, message, notice]

    def reply_stream(conversation: Conversation, settings: ChatSettings, typed: str):
        """Stream into the chat; on any failure the user's text goes back into the box."""
        before = conversation.model_copy(deep=True)
        persona_obj = services.personas[settings.persona]
        try:
            shown = None
            for updated in coalesce(stream_reply(services, persona_obj, settings, conversation)):
                # The reply grows on the reader's thread, so it may already hold the words the next update brings:
                # an update that would show the same chat again is left out.
                if (chat := to_chatbot(updated)) == shown:
                    continue
                shown = chat
                # The box is left alone while streaming: the user may already be typing the next message.
                yield {chatbot: chat, state: updated, notice: ""}
        except PlaygroundError as e:  # nothing was sent: unfilled variable, unknown model
            gr.Warning(str(e))
            yield {chatbot: to_chatbot(before), state: before, message: typed, notice: error_notice(str(e))}
            return
        last = conversation.turns[-1]
        if last.error:
            gr.Warning(last.error)
            yield {chatbot: to_chatbot(conversation), state: conversation, message: typed,
                   notice: error_notice(last.error)}

    def on_send(text, conversation, *values):
        try:
            check_message(text)
            settings = parse_settings(services, *values)
        except PlaygroundError as e:
            gr.Warning(str(e))
            # Every output is given, so an API client gets the chat and its text back, not bare "no change" markers.
            yield {chatbot: to_chatbot(conversation), state: conversation, message: text, notice: error_notice(str(e))}
            return
        conversation = conversation.model_copy(deep=True)
        conversation.add_user(text)
        # Show the message at once, with a "…" reply: a model can take seconds (minutes, loading) to start.
        waiting = conversation.model_copy(deep=True)
        waiting.turns.append(Turn(role="assistant", content=""))
        yield {chatbot: to_chatbot(waiting), state: conversation, message: "", notice: ""}
        yield from _without_failed_attempt(reply_stream(conversation, settings, text))

    def _without_failed_attempt(updates):
        # On a failure the text goes back into the box. If no reply text came back either, take the attempt out of
        # the chat too (the log keeps it): otherwise sending the text again shows the model the user message twice.
        for update in updates:
            if update.get(message) and state in update:
                restored = update[state]
                last = restored.turns[-1] if restored.turns else None
                if last is not None and last.role == "assistant" and last.error and not last.content:
                    restored.turns.pop()
                if restored.turns and restored.turns[-1].role == "user":
                    restored.turns.pop()
                update[chatbot] = to_chatbot(restored)
            yield update

    # Gradio passes event data only to parameters before *values, so `data` comes first.
    def on_retry(data: gr.RetryData, conversation, *values):
        # Retry is offered on the last reply only; data.index points at the user message before it.
        conversation = conversation.model_copy(deep=True)
        conversation.drop_last_reply()
        if conversation.pending_user_text() is None:
            yield {notice: error_notice("There is no message to answer again.")}
            return
        yield from _regenerate(conversation, values)

    def on_edit(data: gr.EditData, conversation, *values):
        conversation = conversation.model_copy(deep=True)
        try:
            conversation.edit(data.index, check_message(text_of(data.value)))
        except (PlaygroundError, IndexError) as e:
            yield {chatbot: to_chatbot(conversation), notice: error_notice(str(e))}
            return
        yield from _regenerate(conversation, values)

    def _regenerate(conversation, values):
        try:
            settings = parse_settings(services, *values)
        except PlaygroundError as e:
            yield {notice: error_notice(str(e))}
            return
        yield {chatbot: to_chatbot(conversation), state: conversation, notice: ""}
        yield from reply_stream(conversation, settings, "")

    def on_undo(conversation, data: gr.UndoData = None):
        conversation = conversation.model_copy(deep=True)
        text = conversation.undo()
        return {chatbot: to_chatbot(conversation), state: conversation, message: text, notice: ""}

    def on_like(conversation, data: gr.LikeData = None):
        conversation = conversation.model_copy(deep=True)
        rating = 1 if data.liked is True else -1 if data.liked is False else 0
        exchange_id = conversation.rate(data.index if isinstance(data.index, int) else data.index[0], rating)
        if exchange_id is not None:
            services.store.rate(exchange_id, rating)
        return conversation

    def on_stop(conversation):
        # Stop cancels the stream first (see the wiring below); the cancelled stream cannot show its own end. gr.State
        # holds the very object the stream writes into, so wait for it to log the reply, then show it as logged:
        # its text, "(incomplete)", its metrics and the exchange id that Like needs.
        index = reply_in_progress(conversation)
        conversation.request_stop()
        finished = index is None or wait_until_logged(conversation, index, timeout=STOP_WAIT_S)
        conversation = conversation.model_copy(deep=True)
        if not finished:  # still waiting on the server for a first byte; mark what the user sees
            if index == len(conversation.turns):
                conversation.turns.append(Turn(role="assistant", content=""))
            reply = conversation.turns[index]
            reply.incomplete, reply.error = True, STOPPED
        return {chatbot: to_chatbot(conversation), state: conversation}

    def on_persona(name, picked):
        p = services.personas[name]
        fresh = Conversation.start(p.greeting)
        return [gr.update(info=p.description), gr.update(value=services.registry.after_persona_change(p.model, picked)),
                p.system_prompt, variable_rows(p), *control_values(p.params),
                gr.update(value=p.speaker or "", info=speaker_info(p.speaker)), p.name, to_chatbot(fresh), fresh, ""]

    def on_new_chat(name):
        fresh = Conversation.start(services.personas[name].greeting if name in services.personas else "")
        return to_chatbot(fresh), fresh, ""

    def on_refresh(current):
        problems = services.registry.refresh()
        note = "\n".join(f"- {name}: {p}" for name, p in problems.items())
        return gr.update(choices=services.registry.choices(), value=current), error_notice(note) if note else ""

    send_event = send.click(on_send, [message, state, *settings_inputs], outputs, api_name="send")
    submit_event = message.submit(on_send, [message, state, *settings_inputs], outputs, api_visibility="private")
    retry_event = chatbot.retry(on_retry, [state, *settings_inputs], outputs, api_visibility="private")
    edit_event = chatbot.edit(on_edit, [state, *settings_inputs], outputs, api_visibility="private")
    chatbot.undo(on_undo, [state], outputs, api_visibility="private")
    chatbot.like(on_like, [state], [state], api_visibility="private")
    # The frontend cancels a stream only once the Stop listener has finished, so cancel first, then mark the reply.
    stop.click(None, None, None, cancels=[send_event, submit_event, retry_event, edit_event]).then(
        on_stop, [state], [chatbot, state], api_name="stop")
    # .input, not .change: History's "Open in Chat" sets the persona too, and must not get a fresh chat for it.
    persona.input(on_persona, [persona, model],
                  [persona, model, system_prompt, variables, *params, speaker, speaker_owner, chatbot, state, notice],
                  api_visibility="private")
    # The description follows the persona however it changes (a pick, or History opening a conversation).
    persona.change(lambda name: gr.update(info=services.personas[name].description if name in services.personas
                                          else ""), [persona], [persona], api_visibility="private",
                   show_progress="hidden")
    speaker.change(lambda name: gr.update(info=speaker_info(name)), [speaker], [speaker], api_visibility="private",
                  trigger_mode="always_last", show_progress="hidden")
    new_chat.click(on_new_chat, [persona], [chatbot, state, notice], api_name="new_chat")
    # The chat's own Clear (bin) button must empty the conversation too, not just what is on screen.
    chatbot.clear(on_new_chat, [persona], [chatbot, state, notice], api_visibility="private")
    refresh.click(on_refresh, [model], [model, notice], api_visibility="private")

    def on_card(path):
        if not path:
            return gr.update(), ""
        try:
            imported = import_persona(services, Path(path))
        except PlaygroundError as e:
            return gr.update(), error_notice(str(e))
        return (gr.update(choices=persona_order(services.personas)),
                f"Imported **{imported.name}** as a persona: pick it in the Persona list.")

    def on_load(name):
        # Model lists arrive in the background after startup: once they have, a new page starts on the persona's
        # model when it is served, else the first served chat model; lookup only when none answers.
        preferred = services.personas[name].model if name in services.personas else None
        return gr.update(choices=services.registry.choices(), value=services.registry.default_model_once_listed(preferred))

    root = gr.context.Context.root_block
    if root is not None:
        root.load(on_load, [persona], [model], api_visibility="private", show_progress="hidden")
    card.upload(on_card, [card], [persona, notice], api_name="import_card")

    build_add_to_dataset(services, lambda: chat_source(services, tab))
    return tab
