"""A chat as the user sees it: turns with their metrics, plus the operations Retry, Undo and Edit."""

import threading

from pydantic import BaseModel, Field, PrivateAttr

from ..core.messages import Message, Role
from ..core.store import new_id


class Turn(BaseModel):
    role: Role
    content: str
    exchange_id: int | None = None
    metrics: str | None = None
    incomplete: bool = False
    error: str | None = None
    rating: int = 0
    speaker: str | None = Field(None, description="A user turn's speaker as it was sent ('' for no name); None "
                                                  "until it is sent.")


class StopSignal:
    """Stop, pressed for the reply being written into one conversation object.

    The reply is read on a thread of its own (see coalesce.py), so closing the UI's generator does not reach it
    in time: the reader would run on to the end of a fast reply. Stop sets this signal on the very object the
    stream writes into, and the stream ends at its next chunk. A copy of the conversation (every new message,
    Retry or Edit starts from one) gets a fresh signal, so an old Stop never stops a new reply.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def __deepcopy__(self, memo) -> "StopSignal":
        return StopSignal()

    def __eq__(self, other: object) -> bool:
        # Not part of what a conversation is: two conversations with the same turns are equal, stopped or not.
        return isinstance(other, StopSignal)

    __hash__ = object.__hash__

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class Conversation(BaseModel):
    id: str = Field(default_factory=new_id)
    turns: list[Turn] = Field(default_factory=list)
    continued_from: str | None = Field(None, description="The conversation this one was reopened from.")
    _stop: StopSignal = PrivateAttr(default_factory=StopSignal)

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @classmethod
    def start(cls, greeting: str = "") -> "Conversation":
        """A new conversation with an id of its own: every chat, in every browser session, gets one."""
        return cls(turns=[Turn(role="assistant", content=greeting)] if greeting else [])

    @classmethod
    def reopened(cls, conversation_id: str, turns: list) -> "Conversation":
        """A saved conversation to continue: a new conversation holding its turns, so two sessions reopening the
        same chat (or one reopening it twice) never write over each other's transcript."""
        return cls(turns=turns, continued_from=conversation_id)

    def title(self) -> str:
        first = next((t.content for t in self.turns if t.role == "user"), "New chat")
        return first.strip().splitlines()[0][:80] if first.strip() else "New chat"

    def history(self, user_text=lambda turn: turn.content) -> list[Message]:
        """What the model is shown: failed replies with no text are left out, partial ones kept. `user_text` gives
        a user turn's text as sent (with its speaker's name)."""
        return [Message(role=t.role, content=user_text(t) if t.role == "user" else t.content)
                for t in self.turns if t.content or t.role == "user"]

    def pending_user_text(self) -> str | None:
        """The user turn awaiting a reply, if the conversation ends with one."""
        return self.turns[-1].content if self.turns and self.turns[-1].role == "user" else None

    def add_user(self, text: str) -> None:
        self.turns.append(Turn(role="user", content=text))

    def drop_last_reply(self) -> None:
        """For Retry: forget the last reply so the same user turn is asked again."""
        if self.turns and self.turns[-1].role == "assistant" and len(self.turns) > 1:
            self.turns.pop()

    def undo(self) -> str:
        """Remove the last user turn and everything after it; returns its text for the message box."""
        for i in range(len(self.turns) - 1, -1, -1):
            if self.turns[i].role == "user":
                text = self.turns[i].content
                del self.turns[i:]
                return text
        return ""

    def edit(self, index: int, text: str) -> None:
        """Replace a user turn and drop what followed it, ready to regenerate."""
        if not (0 <= index < len(self.turns)) or self.turns[index].role != "user":
            raise IndexError(f"turn {index} is not a user message")
        del self.turns[index + 1:]
        self.turns[index] = Turn(role="user", content=text)

    def rate(self, index: int, rating: int) -> int | None:
        """Set a reply's rating; returns its exchange id so the log can be updated."""
        turn = self.turns[index]
        turn.rating = rating
        return turn.exchange_id
