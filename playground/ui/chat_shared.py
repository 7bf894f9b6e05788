"""What the Chat tab shares with the panels built on it (Add to dataset, History): its components and readers.

Apart from chat_tab.py so those panels import it without importing the tab that builds them.
"""

from dataclasses import dataclass

import gradio as gr

from ..chat.ask import ChatSettings
from ..chat.conversation import Conversation
from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..core.params import PARAM_NAMES
from .params_form import parse_params


@dataclass
class ChatTab:
    """The components other tabs need to reach (History reopens conversations into them)."""

    chatbot: gr.Chatbot
    state: gr.State
    message: gr.Textbox
    notice: gr.Markdown
    persona: gr.Dropdown
    model: gr.Dropdown
    system_prompt: gr.Textbox
    variables: gr.Dataframe
    params: list
    speaker: gr.Textbox
    speaker_owner: gr.State  # the persona whose speaker the box was filled with (see parse_settings)
    settings_inputs: list


def parse_settings(services: Services, persona_name, model, system_prompt, variables, *rest) -> ChatSettings:
    """The settings from the Chat tab's inputs: the parameters, then (when given) the speaker box and its owner.

    The box counts only when it was filled for this persona: an API client that picks another persona without
    going through the page (so the box still holds the first persona's speaker, or its default) speaks as the
    persona's own speaker, as before there was a box."""
    param_values, (speaker, owner) = rest[:len(PARAM_NAMES)], (list(rest[len(PARAM_NAMES):]) + [None, None])[:2]
    if owner != persona_name:
        speaker = None
    if persona_name not in services.personas:
        raise PlaygroundError(f"Unknown persona '{persona_name}'. Pick one from the Persona list.")
    rows = variables.values.tolist() if hasattr(variables, "values") else (variables or [])
    values = {str(r[0]).strip(): str(r[1]) for r in rows if r and str(r[0]).strip()}
    return ChatSettings(persona=persona_name, model=model or "", system_prompt=system_prompt or "",
                        params=parse_params(list(param_values)), variables=values,
                        speaker=None if speaker is None else str(speaker).strip())


def speaker_info(speaker: str | None) -> str:
    """What the speaker box says happens to each message."""
    name = (speaker or "").strip()
    return f'Each message goes out as "{name}: …". Empty: no name.' if name else \
        "Messages go out as typed, with no name. Type one to speak as someone."


def reply_in_progress(conversation: Conversation) -> int | None:
    """Index of the reply being streamed (it may not have begun yet), or None when nothing is being answered."""
    turns = conversation.turns
    if turns and turns[-1].role == "user":
        return len(turns)
    if len(turns) >= 2 and turns[-1].role == "assistant" and turns[-2].role == "user" and turns[-1].metrics is None:
        return len(turns) - 1
    return None
