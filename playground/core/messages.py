"""The one message type the domain uses; UI and provider shapes are converted at the edges."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str

    def as_openai(self) -> dict:
        return {"role": self.role, "content": self.content}


def to_openai(messages: list[Message]) -> list[dict]:
    return [m.as_openai() for m in messages]

