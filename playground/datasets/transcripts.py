"""From a chat to a training example: what was sent, reshaped the way it will be deployed.

Public API (the Chat and A/B tabs and log review call these):

    ConversionOptions                         how to reshape a transcript (pydantic, extra="forbid")
    example_from_conversation(persona, settings, conversation, options) -> Example
        a live chat (Chat tab state): the turns as shown, with their ratings and exchange ids
    example_from_exchanges(store, exchange_ids, options, personas) -> Example
        logged rows: the latest of the given exchanges (one conversation) is rebuilt from its request, which
        holds every message as sent, plus its reply
    logged_exchanges(store, persona=, model=, rating=, text=, limit=) -> list[dict]   the log, filtered
    last_user_text(request) -> str   what a logged request asked
    log_facets(store) -> (personas, models)   the values the log holds, for filter pickers

A persona's long system prompt and few-shot seed turns produced the data; the fine-tune will run with the short
deploy prompt and no seeds, so by default the example is built that way. `upto_turn` and `edits` index the
chat's turns (for logged exchanges: the chat rebuilt from the request, greeting first if any). Every assistant
turn that is kept out of the loss gets weight 0: a disliked reply (with `weight_disliked`) and a reply that was
cut off (stopped, or broken by an error); a corrected (edited) reply is always trained on.
The example's source keeps the exchange ids of the replies in it, the persona and the model.
"""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..chat.ask import ChatSettings
from ..chat.conversation import Conversation, Turn
from ..chat.personas import Persona
from ..core.errors import MissingVariables, PlaygroundError
from ..core.messages import Message
from ..core.prompts import fill, fill_messages
from ..core.store import NotFoundError, Store
from .examples import Example, Source, TrainingMessage

SystemChoice = Literal["persona", "deploy", "custom", "none"]
RATINGS = {"liked": 1, "disliked": -1, "unrated": 0}


class ConversionError(PlaygroundError):
    pass


class ConversionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: SystemChoice = Field("deploy", description=(
        "The system message: the persona's prompt as sent, its short deploy prompt, a custom one, or none."))
    custom_system: str = Field("", description="The system prompt when `system` is 'custom'.")
    keep_seed_turns: bool = Field(False, description="Keep the persona's few-shot seed turns.")
    speaker_prefix: bool = Field(True, description="Prefix user turns with the speaker's name, as they were sent.")
    weight_disliked: bool = Field(True, description="Weight 0 (not trained on) for disliked replies.")
    keep_greeting: bool = Field(False, description="Keep the persona's greeting, the reply before any user turn (off: an example that opens with the assistant teaches the model to speak first; validation warns about it).")
    upto_turn: int | None = Field(None, ge=0, description="Stop at this turn, an assistant reply (default: the last reply).")
    edits: dict[int, str] = Field(default_factory=dict, description="Turn index -> corrected text.")


@dataclass
class SentChat:
    """A chat split the way it was sent: system prompt and seed turns (filled in), then the turns as typed."""

    persona: Persona
    model: str
    system: str | None
    seeds: list[Message]
    turns: list[Turn]
    values: dict[str, str]


def example_from_conversation(persona: Persona, settings: ChatSettings, conversation: Conversation,
                              options: ConversionOptions) -> Example:
    """The chat in the Chat tab (or one side of A/B) as an example; raises ConversionError saying what to change."""
    persona = settings.speaking_persona(persona)  # user turns prefixed as they were sent
    values = {**persona.variables, **settings.variables}
    system = fill(settings.system_prompt, values) if settings.system_prompt.strip() else None
    sent = SentChat(persona, settings.model, system, fill_messages(persona.seed_messages, values),
                    list(conversation.turns), values)
    return convert(sent, options)


def example_from_exchanges(store: Store, exchange_ids: Sequence[int], options: ConversionOptions,
                           personas: Mapping[str, Persona]) -> Example:
    """Logged exchanges of one conversation as an example: the latest one's request (every message as sent) and reply."""
    return convert(sent_chat_from_exchanges(store, exchange_ids, personas), options)


# --- the conversion --------------------------------------------------------------------------------------


def convert(sent: SentChat, options: ConversionOptions) -> Example:
    end = _last_turn(sent.turns, options.upto_turn)
    turns = sent.turns[:end + 1]
    for index, text in options.edits.items():
        if not 0 <= index <= end:
            raise ConversionError(f"Message {index} is not in the part being added (messages 0 to {end}).")
        if not text.strip():
            raise ConversionError(f"The corrected message {index} is empty: write its text or undo the edit.")
    messages = _system(sent, options)
    if options.keep_seed_turns:
        messages += [TrainingMessage(role=m.role, content=m.content) for m in sent.seeds]
    exchange_ids = []
    for index, turn in enumerate(turns):
        message = _message(sent.persona, index, turn, options, greeting=not any(t.role == "user" for t in turns[:index]))
        if message is not None:
            messages.append(message)
            if turn.exchange_id is not None and turn.role == "assistant":
                exchange_ids.append(turn.exchange_id)
    if not any(m.role == "assistant" and m.weight != 0 for m in messages):
        raise ConversionError("Nothing to train on: every reply in it is disliked or was cut off (weight 0). "
                              "Correct a reply, or untick 'weight 0 on disliked replies'.")
    source = Source(exchange_ids=exchange_ids, persona=sent.persona.name, model=sent.model or None)
    try:
        return Example(messages=messages, source=source)
    except ValidationError as e:
        raise ConversionError(e.errors()[0]["msg"].removeprefix("Value error, ") + ".") from None


def _last_turn(turns: list[Turn], upto: int | None) -> int:
    """The index of the reply the example ends with: `upto`, or the last reply that answers a user turn."""
    if upto is None:
        for i in range(len(turns) - 1, -1, -1):
            if turns[i].role == "assistant" and any(t.role == "user" for t in turns[:i]):
                return i
        raise ConversionError("There is no reply to add yet: send a message first.")
    if upto >= len(turns) or turns[upto].role != "assistant":
        raise ConversionError(f"Message {upto} is not a reply: choose a reply to end the example with.")
    if not any(t.role == "user" for t in turns[:upto]):
        raise ConversionError(f"Message {upto} answers no message of the user: choose a later reply.")
    return upto


def _system(sent: SentChat, options: ConversionOptions) -> list[TrainingMessage]:
    if options.system == "none":
        return []
    if options.system == "persona":
        text = sent.system
    elif options.system == "custom":
        text = options.custom_system.strip()
        if not text:
            raise ConversionError("Write the custom system prompt, or choose another system prompt option.")
    else:
        if not (sent.persona.deploy_prompt or "").strip():
            raise ConversionError(f"The persona '{sent.persona.name}' has no deploy prompt: add \"deploy_prompt\" to "
                                  "its file, or choose a custom system prompt, the persona's, or none.")
        text = fill(sent.persona.deploy_prompt, sent.values)
    return [TrainingMessage(role="system", content=text)] if text and text.strip() else []


def _message(persona: Persona, index: int, turn: Turn, options: ConversionOptions, greeting: bool) -> TrainingMessage | None:
    edited = index in options.edits
    content = options.edits[index] if edited else turn.content
    if turn.role == "assistant":
        if not content.strip() or (greeting and not options.keep_greeting):
            return None  # a failed reply with no text was never shown to the model either
        cut_off = turn.incomplete or bool(turn.error)
        weight = 0 if not edited and (cut_off or (options.weight_disliked and turn.rating < 0)) else None
        return TrainingMessage(role="assistant", content=content, weight=weight)
    if turn.role == "user" and options.speaker_prefix:
        content = persona.speaker_prefixed(content, turn.speaker)
    return TrainingMessage(role=turn.role, content=content)


# --- logged exchanges ------------------------------------------------------------------------------------


def sent_chat_from_exchanges(store: Store, exchange_ids: Sequence[int], personas: Mapping[str, Persona]) -> SentChat:
    if not exchange_ids:
        raise ConversionError("Select at least one logged exchange.")
    rows = [_exchange(store, i) for i in exchange_ids]
    conversations = {r["conversation_id"] for r in rows}
    if len(conversations) > 1:
        raise ConversionError(f"Exchanges {', '.join(str(i) for i in exchange_ids)} come from different "
                              "conversations: an example is one conversation.")
    last = max(rows, key=lambda r: (r["turn"], r["id"]))
    if not (last["reply"] or "").strip():
        raise ConversionError(f"Exchange {last['id']} has no reply to train on"
                              + (f" ({last['error']})." if last["error"] else "."))
    persona = personas.get(last["persona"]) or Persona(name=last["persona"] or "unknown")
    saved = store.conversation(last["conversation_id"])
    settings = ChatSettings.model_validate(saved["settings"]) if saved else None
    values = {**persona.variables, **(settings.variables if settings else {})}
    model = f"{last['provider']}:{last['model']}" if last["provider"] else last["model"]
    history = _conversation_exchanges(store, last)
    if "messages" in last["request"]:
        system, seeds, turns = _split_request(persona, values, last["request"]["messages"], history)
    elif saved is not None and (turns := _transcript_before(saved["transcript"], last["id"], history)) is not None:
        # A completion prompt is one text: the saved chat tells its turns apart.
        system = fill(settings.system_prompt, values) if settings.system_prompt.strip() else None
        seeds = _seeds(persona, values)
    else:
        raise ConversionError(f"Exchange {last['id']} was sent to a completion model as one text prompt, and its "
                              "conversation no longer holds it, so its turns cannot be told apart.")
    turns.append(_reply_turn(last))
    return SentChat(persona, model, system, seeds, turns, values)


def _exchange(store: Store, exchange_id: int) -> dict:
    try:
        return store.exchange(int(exchange_id))
    except (NotFoundError, ValueError, TypeError):
        raise ConversionError(f"There is no logged exchange {exchange_id}.") from None


def _conversation_exchanges(store: Store, last: dict) -> list[dict]:
    """The conversation's earlier replies, newest first: retries leave several per turn, the latest one counts."""
    with store.db() as db:
        rows = db.query("select id, reply, rating, incomplete, error from exchanges "
                        "where conversation_id = ? and id < ? order by id desc", [last["conversation_id"], last["id"]])
        return list(rows)


def _seeds(persona: Persona, values: dict) -> list[Message]:
    try:
        return fill_messages(persona.seed_messages, values)
    except MissingVariables:
        return list(persona.seed_messages)


def _split_request(persona: Persona, values: dict, messages: list[dict],
                   history: list[dict]) -> tuple[str | None, list[Message], list[Turn]]:
    sent = [Message(role=m["role"], content=m["content"]) for m in messages]
    system = sent[0].content if sent and sent[0].role == "system" else None
    rest = sent[1:] if system is not None else sent
    # Seed turns are recognised by their roles: the persona file may have been reworded since.
    expected = [m.role for m in _seeds(persona, values)]
    seeds = rest[:len(expected)] if [m.role for m in rest[:len(expected)]] == expected else []
    turns = []
    for message in rest[len(seeds):]:
        if message.role == "user":
            turns.append(Turn(role="user", content=_unprefixed(persona, message.content)))
        else:
            logged = next((h for h in history if h["reply"] == message.content), None)
            turns.append(_reply_turn(logged) if logged else Turn(role=message.role, content=message.content))
    return system, seeds, turns


def _unprefixed(persona: Persona, text: str) -> str:
    prefix = f"{persona.speaker}: " if persona.speaker else None
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def _reply_turn(row: dict) -> Turn:
    return Turn(role="assistant", content=row["reply"] or "", exchange_id=row["id"], rating=row["rating"] or 0,
                incomplete=bool(row["incomplete"]), error=row["error"])


def _transcript_before(transcript: list[dict], exchange_id: int, history: list[dict]) -> list[Turn] | None:
    """The saved chat before the reply logged as `exchange_id`, ratings taken from the log (Like does not resave it)."""
    turns = [Turn.model_validate(t) for t in transcript]
    end = next((i for i, t in enumerate(turns) if t.exchange_id == exchange_id), None)
    if end is None:
        return None
    ratings = {h["id"]: h["rating"] for h in history}
    for turn in turns[:end]:
        if turn.exchange_id in ratings:
            turn.rating = ratings[turn.exchange_id] or 0
    return turns[:end]


# --- finding logged transcripts ----------------------------------------------------------------------------


def logged_exchanges(store: Store, *, persona: str | None = None, model: str | None = None,
                     rating: str | int | None = None, text: str = "", limit: int = 200) -> list[dict]:
    """Logged exchanges with a reply, newest first, filtered by persona, model, rating and words.

    The words must all be in the exchange's own question or reply: the request also holds the earlier turns and
    the seed turns, which would match every exchange of a chat or a persona.
    `rating` is 'liked', 'disliked', 'unrated' (or 1/-1/0); None or 'any' keeps all.
    """
    where: list[str] = ["e.reply != ''"]
    args: list[object] = []
    if persona:
        where.append("e.persona = ?")
        args.append(persona)
    if model:
        where.append("e.model = ?")
        args.append(model)
    if rating not in (None, "", "any"):
        value = RATINGS.get(rating, rating) if isinstance(rating, str) else rating
        if value not in RATINGS.values():
            raise ConversionError(f"Unknown rating '{rating}': use liked, disliked or unrated.")
        where.append("e.rating = ?")
        args.append(value)
    words = re.findall(r"\w+", text.casefold())[:64]
    if words:
        where.append("e.rowid in (select rowid from exchanges_fts where exchanges_fts match ?)")
        args.append(" ".join(f'"{w}"' for w in words))
    found = []
    with store.db() as db:
        for row in db.query(f"select e.* from exchanges e where {' and '.join(where)} order by e.id desc", args):
            row = _decoded(row)
            own = f"{last_user_text(row['request'])}\n{row['reply']}".casefold()
            if all(w in own for w in words):
                found.append(row)
                if len(found) >= limit:
                    break
    return found


def last_user_text(request: dict) -> str:
    """What the exchange asked: its last user message, or a completion prompt's last line before the answer cue."""
    if "prompt" in request:
        lines = request["prompt"].rstrip().splitlines()
        return lines[-2] if len(lines) >= 2 else request["prompt"]
    return next((m["content"] for m in reversed(request.get("messages", [])) if m["role"] == "user"), "")


def log_facets(store: Store) -> tuple[list[str], list[str]]:
    """The personas and models that appear in the log, sorted."""
    with store.db() as db:
        personas = [r["persona"] for r in db.query("select distinct persona from exchanges where persona != '' order by 1")]
        models = [r["model"] for r in db.query("select distinct model from exchanges order by 1")]
    return personas, models


def _decoded(row: dict) -> dict:
    row["request"] = json.loads(row["request"]) if isinstance(row.get("request"), str) else row.get("request")
    return row
