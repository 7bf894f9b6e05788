"""Fine-tuning examples and datasets: the Example model a dataset holds, and the file models around it.

An example is a conversation to train on. A preference (DPO) example is a prompt that ends with a user turn
plus a `chosen` and a `rejected` reply; trainers that only do supervised fine-tuning see prompt + chosen.
Checking them is elsewhere: duplicates.py (copies), dataset_stats.py (tokens and cost), splits.py (train/test).
"""

import functools
import time
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..core.messages import Message, Role

# The model examples are counted, checked and priced for when none is named.
DEFAULT_MODEL = "gpt-4o-mini"


def now() -> str:
    """The time in UTC, to the millisecond (ISO 8601)."""
    return _utc_millisecond(time.time_ns() // 1_000_000)


@functools.lru_cache(maxsize=1)
def _utc_millisecond(ms: int) -> str:
    # Kept for the millisecond: a file is read at several examples a millisecond, and formatting the time for each
    # cost a third as much as building it.
    return datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000).isoformat(
        timespec="milliseconds")


class TrainingMessage(Message):
    """A message with OpenAI's per-turn `weight`: 0 keeps an assistant turn out of the loss."""

    weight: Literal[0, 1] | None = None

    @model_validator(mode="after")
    def _weight_on_assistant_only(self):
        if self.weight is not None and self.role != "assistant":
            raise ValueError(f"only assistant messages carry a weight, not {self.role} messages")
        return self


class Source(BaseModel):
    """Where an example came from, so a reviewer can go back to it."""

    model_config = ConfigDict(extra="forbid")

    exchange_ids: list[int] = Field(default_factory=list, description="Logged exchanges it was built from.")
    persona: str | None = None
    model: str | None = None
    file: str | None = Field(None, description="The file it was imported from.")
    line: int | None = Field(None, ge=1, description="Its line in that file.")


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    messages: list[TrainingMessage] = Field(min_length=1)
    chosen: str | None = Field(None, description="Preferred assistant reply to the last user turn (DPO).")
    rejected: str | None = Field(None, description="Dispreferred assistant reply to the last user turn (DPO).")
    tags: list[str] = Field(default_factory=list)
    excluded: bool = Field(False, description="Kept, but left out of stats, splits and exports.")
    source: Source = Field(default_factory=Source)
    created_at: str = Field(default_factory=now)

    @model_validator(mode="after")
    def _trainable(self):
        if (self.chosen is None) != (self.rejected is None):
            raise ValueError("a preference example needs both 'chosen' and 'rejected'")
        if self.is_preference and self.messages[-1].role != "user":
            raise ValueError("a preference example's messages must end with the user turn that chosen/rejected answer")
        if not any(m.role == "assistant" for m in self.conversation()):
            raise ValueError("an example needs an assistant turn to train on")
        return self

    @property
    def is_preference(self) -> bool:
        return self.chosen is not None

    def conversation(self) -> list[TrainingMessage]:
        """What a supervised trainer sees: the messages, plus the chosen reply of a preference example."""
        if self.is_preference:
            return [*self.messages, TrainingMessage(role="assistant", content=self.chosen)]
        return list(self.messages)

    def system_prompt(self) -> str | None:
        return next((m.content for m in self.messages if m.role == "system"), None)

    def user_text(self) -> str:
        return "\n".join(m.content for m in self.messages if m.role == "user")


def checked_message(role: Role, content: str) -> TrainingMessage:
    """TrainingMessage(role=role, content=content) for a role and a str the caller has checked, without validating
    them again: a reader checks each message for its own error messages, and validating costs as much again."""
    return _unvalidated(TrainingMessage, {"role": role, "content": content, "weight": None}, {"role", "content"})


def checked_example(messages: list[TrainingMessage], file: str | None, line: int) -> Example | None:
    """Example(messages=messages, source=Source(file=file, line=line)) without validating again, for messages
    built as TrainingMessages; None when validation could object (no assistant turn, no line number): validate then."""
    if type(line) is not int or line < 1 or not (file is None or type(file) is str):
        return None
    if not any(m.role == "assistant" for m in messages):  # also when there are none
        return None
    source = _unvalidated(Source, {"exchange_ids": [], "persona": None, "model": None, "file": file, "line": line},
                          {"file", "line"})
    values = {"id": None, "messages": messages, "chosen": None, "rejected": None, "tags": [], "excluded": False,
              "source": source, "created_at": now()}
    return _unvalidated(Example, values, {"messages", "source"})


def _unvalidated(model: type[BaseModel], values: dict, fields_set: set[str]):
    """What model.model_construct(**values) builds, when `values` holds every field, valid, in field order.

    model_construct itself looks up every field's default (and a default factory's signature) on each call,
    which costs more than validating.
    """
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", fields_set)
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    examples: list[Example] = Field(default_factory=list)
