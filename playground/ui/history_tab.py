"""History tab: search past conversations and the exchange log; reopen a conversation to continue it."""

import gradio as gr

from ..chat.ask import ChatSettings
from ..chat.conversation import Conversation
from ..chat.services import Services
from .chat_shared import ChatTab, speaker_info
from .chat_tab import variable_rows
from .format import error_notice, to_chatbot
from .params_form import control_values

CONVERSATION_COLUMNS = ["id", "updated", "persona", "model", "title"]
EXCHANGE_COLUMNS = ["id", "time", "persona", "model", "tokens", "cost $", "ms", "rating", "error", "reply"]


def conversation_rows(services: Services, query: str) -> list[list]:
    return [[c["id"], c["updated_at"][:19].replace("T", " "), c["persona"], c["model"], c["title"]]
            for c in services.store.conversations(query or "")] or [[""] * len(CONVERSATION_COLUMNS)]


def exchange_rows(services: Services, query: str) -> list[list]:
    rows = []
    for e in services.store.exchanges(query or "", limit=100):
        tokens = f"{e['prompt_tokens'] or 0} + {e['completion_tokens'] or 0}"
        rows.append([e["id"], e["created_at"][:19].replace("T", " "), e["persona"], e["model"], tokens,
                     round(e["cost_usd"], 6) if e["cost_usd"] is not None else "", round(e["duration_ms"] or 0),
                     e["rating"], e["error"] or "", (e["reply"] or "")[:200]])
    return rows or [[""] * len(EXCHANGE_COLUMNS)]


def build_history_tab(services: Services, chat: ChatTab, tabs: gr.Tabs, tab: gr.Tab) -> None:
    with gr.Row():
        query = gr.Textbox(label="Search", placeholder="Words from a message or a reply", scale=4)
        search = gr.Button("Search", scale=1)
    conversations = gr.Dataframe(conversation_rows(services, ""), headers=CONVERSATION_COLUMNS,
                                 label="Conversations (click a row to open it in Chat)", interactive=False,
                                 type="array", wrap=True, column_widths=["22%", "14%", "16%", "18%", "30%"])
    with gr.Row():
        conversation_id = gr.Textbox(label="Conversation id", scale=4, info="Or paste an id and press Open in Chat.")
        open_button = gr.Button("Open in Chat", variant="primary", scale=1)
    notice = gr.Markdown("")
    exchanges = gr.Dataframe(exchange_rows(services, ""), headers=EXCHANGE_COLUMNS,
                             label="Exchange log (newest first)", interactive=False, type="array", wrap=True,
                             column_widths=["5%", "14%", "14%", "12%", "9%", "8%", "6%", "7%", "10%", "15%"])

    def on_search(text):
        return conversation_rows(services, text), exchange_rows(services, text)

    def on_select(evt: gr.SelectData):
        cid = str(evt.row_value[0]) if evt.row_value and evt.row_value[0] not in ("", None) else ""
        if not cid:  # the empty table's blank row
            return {conversation_id: ""}
        return {conversation_id: cid, **on_open(cid)}

    def on_open(cid):
        row = services.store.conversation((cid or "").strip())
        if row is None:
            return {notice: error_notice(f"No conversation with id '{cid}'. Select one in the table.")}
        settings = ChatSettings.model_validate(row["settings"])
        conversation = Conversation.reopened(row["id"], row["transcript"])
        persona = services.personas.get(settings.persona)
        if persona is None:
            return {notice: error_notice(f"The persona '{settings.persona}' of that conversation no longer exists.")}
        speaker = persona.speaker or "" if settings.speaker is None else settings.speaker
        updates = {
            # Everything above the chat follows the conversation (the persona's description follows the persona
            # in chat_tab); a failed message left in the box belongs to the chat being left.
            chat.chatbot: to_chatbot(conversation), chat.state: conversation, chat.message: "",
            chat.persona: settings.persona,
            chat.model: settings.model, chat.system_prompt: settings.system_prompt,
            chat.variables: variable_rows(persona, settings.variables), chat.notice: "", notice: "",
            chat.speaker: gr.update(value=speaker, info=speaker_info(speaker)), chat.speaker_owner: settings.persona,
            tabs: gr.Tabs(selected="chat"),
        }
        updates.update(zip(chat.params, control_values(settings.params)))
        return updates

    search.click(on_search, [query], [conversations, exchanges], api_name="history_search")
    query.submit(on_search, [query], [conversations, exchanges], api_visibility="private")
    # The tables are filled when the app is built; chats since then must show up when the tab is opened.
    tab.select(on_search, [query], [conversations, exchanges], api_visibility="private")
    # The message box after the settings, so an API client's outputs keep their order (chat, persona, model...).
    opened = [chat.chatbot, chat.state, chat.persona, chat.model, chat.system_prompt, chat.variables,
              *chat.params, chat.speaker, chat.speaker_owner, chat.message, chat.notice, notice, tabs]
    conversations.select(on_select, None, [conversation_id, *opened], api_visibility="private")
    open_button.click(on_open, [conversation_id], opened, api_name="open_conversation")
