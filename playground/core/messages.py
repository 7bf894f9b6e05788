"""The one message type the domain uses; UI and provider shapes are converted at the edges.

A message is OpenAI's chat message: besides role and content it may carry the speaker's `name`, an assistant's
`tool_calls` (then its content may be None), or, on a `tool` message, the `tool_call_id` it answers.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

from .tool_calls import ToolCall

Role = Literal["system", "user", "assistant", "tool"]
_OPTIONAL_KEYS = ("name", "tool_calls", "tool_call_id")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str | None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _tool_fields_fit_role(self):
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError(f"only assistant messages make tool calls, not {self.role} messages")
        if (self.tool_call_id is not None) != (self.role == "tool"):
            raise ValueError("a tool message, and only a tool message, names the tool_call_id it answers")
        if self.content is None and not self.tool_calls:
            raise ValueError(f"a {self.role} message needs content (only an assistant turn making tool calls may have none)")
        return self

    @model_serializer(mode="wrap")
    def _tool_fields_only_when_set(self, handler):
        # A message without a name or tool fields dumps as it always did ({"role", "content"}): logs, states and
        # files written before tool calls existed stay the same.
        data = handler(self)
        for key in _OPTIONAL_KEYS:
            if key in data and data[key] is None:
                del data[key]
        return data

    @property
    def text(self) -> str:
        """The content as text: '' for an assistant turn that only calls tools."""
        return self.content or ""

    def as_openai(self) -> dict:
        item: dict[str, object] = {"role": self.role, "content": self.content}
        if self.name is not None:
            item["name"] = self.name
        if self.tool_calls is not None:
            item["tool_calls"] = [call.as_openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            item["tool_call_id"] = self.tool_call_id
        return item


def to_openai(messages: list[Message]) -> list[dict]:
    return [m.as_openai() for m in messages]

