"""Demo mode's page: a chat with the demo's personas and models, and nothing else.

No settings, keys, datasets, logs or other tabs are built, so none of them can reach a guest's browser; the
persona's system prompt stays on the host. Replies show their text only: the host's endpoints, costs and
error details stay in the host's log.
"""

import gradio as gr

from ..chat.ask import check_message, stream_reply
from ..chat.conversation import Conversation, Turn
from ..chat.services import Services
from ..core.coalesce import coalesce
from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..sharing.demo import DemoChat, DemoSettings, visitor
from .format import MESSAGE_HINT, error_notice

FAILED_REPLY = "The model could not answer just now; try again in a moment."


def demo_chatbot(conversation: Conversation) -> list[dict]:
    """The chat as a guest sees it: words only, with a plain line where a reply failed."""
    shown = []
    for turn in conversation.turns:
        if turn.role != "assistant":
            shown.append({"role": turn.role, "content": turn.content})
            continue
        parts = [turn.content or ("" if turn.metrics or turn.error else "…")]
        if turn.error:
            parts.append(f"⚠️ {FAILED_REPLY}")
        shown.append({"role": "assistant", "content": "\n\n".join(p for p in parts if p)})
    return shown


def build_demo_app(services: Services, settings: DemoSettings) -> gr.Blocks:
    guard = DemoChat(settings, services.personas)
    first = guard.personas[settings.personas[0]]
    with gr.Blocks(title="Playground demo", analytics_enabled=False) as app:
        gr.Markdown(f"## Playground demo · {', '.join(settings.personas)}")
        with gr.Row():
            persona = gr.Dropdown(settings.personas, value=first.name, label="Persona", info=first.description,
                                  allow_custom_value=False)
            model = gr.Dropdown(settings.models, value=settings.models[0], label="Model", allow_custom_value=False)
        chatbot = gr.Chatbot(demo_chatbot(Conversation.start(first.greeting)), label="Chat", height=480,
                             buttons=["copy"], group_consecutive_messages=False)
        notice = gr.Markdown("", elem_id="chat-notice")
        with gr.Row():
            # lines=1 with max_lines>1: Enter sends, Shift+Enter adds a line (see format.MESSAGE_HINT).
            message = gr.Textbox(label="Message", placeholder=MESSAGE_HINT, lines=1, max_lines=8,
                                 scale=6, autofocus=True)
            with gr.Column(scale=1, min_width=100):
                send = gr.Button("Send", variant="primary")
                new_chat = gr.Button("New chat")
        gr.Markdown(f"<sub>A demo: messages up to {plural(settings.max_chars, 'character')}, replies capped at "
                    f"{plural(settings.max_tokens, 'token')}, and each visitor may send "
                    f"{plural(settings.per_session_per_minute, 'message')} a minute. The host keeps a log of these "
                    "chats.</sub>")
        # None until the first message: each session then starts a conversation of its own. (A shared starting
        # Conversation would put every visitor in one conversation; a callable State adds a public load endpoint.)
        state = gr.State(None)
        outputs = [chatbot, state, message, notice]

        def on_send(text, conversation, persona_name, model_name, request: gr.Request):
            try:
                check_message(text)
                chat_settings = guard.chat_settings(persona_name, model_name)
                conversation = conversation or Conversation.start(guard.personas[persona_name].greeting)
                asked = conversation.model_copy(deep=True)
                asked.add_user(text)
                guard.check_size(persona_name, chat_settings, asked, text)
                guard.admit(visitor(request.username, request.client.host if request.client else None))
            except PlaygroundError as e:
                gr.Warning(str(e))
                yield {chatbot: demo_chatbot(conversation), state: conversation, message: text,
                       notice: error_notice(str(e))}
                return
            conversation = asked
            waiting = conversation.model_copy(deep=True)
            waiting.turns.append(Turn(role="assistant", content=""))
            yield {chatbot: demo_chatbot(waiting), state: conversation, message: "", notice: ""}
            try:
                for updated in coalesce(stream_reply(services, guard.personas[persona_name], chat_settings, conversation)):
                    # The box is left alone while streaming: the guest may already be typing the next message.
                    yield {chatbot: demo_chatbot(updated), state: updated, notice: ""}
            except PlaygroundError:  # refused before sending (an unknown model): the host's log has no reply
                conversation.turns.pop()
                yield {chatbot: demo_chatbot(conversation), state: conversation, message: text,
                       notice: error_notice(FAILED_REPLY)}
                return
            if conversation.turns[-1].error:  # every output given, so an API client gets the chat, not "no change"
                yield {chatbot: demo_chatbot(conversation), state: conversation, notice: error_notice(FAILED_REPLY)}

        def on_persona(name):
            chosen = guard.personas.get(name, first)
            fresh = Conversation.start(chosen.greeting)
            return gr.update(info=chosen.description), demo_chatbot(fresh), fresh, ""

        def on_new_chat(name):
            fresh = Conversation.start(guard.personas.get(name, first).greeting)
            return demo_chatbot(fresh), fresh, ""

        send.click(on_send, [message, state, persona, model], outputs, api_name="send")
        message.submit(on_send, [message, state, persona, model], outputs, api_visibility="private")
        persona.input(on_persona, [persona], [persona, chatbot, state, notice], api_visibility="private")
        new_chat.click(on_new_chat, [persona], [chatbot, state, notice], api_name="new_chat")
        chatbot.clear(on_new_chat, [persona], [chatbot, state, notice], api_visibility="private")
    app.queue(default_concurrency_limit=16)
    return app
