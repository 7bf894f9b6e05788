"""The endpoint contract: what every provider offers, and the errors and streams it returns.

A provider is anything that lists models and streams a reply for a chat or a prompt. `openai` is the one for
every OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, LM Studio); `lookup` is the offline baseline.
A new provider implements `Provider` and joins the `registry`; nothing above this package names a concrete one.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import PlaygroundError
from ..core.messages import Message
from ..core.params import SamplingParams
from ..core.redaction import redact


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Short name shown in the model picker.")
    base_url: str = Field(description="The API root, ending in /v1.")
    api_key_env: str | None = Field(None, description="Name of the environment variable holding the key (never the key).")
    models: list[str] = Field(default_factory=list, description="Models to offer even if /v1/models does not list them.")
    completion_models: list[str] = Field(default_factory=list, description="Base models to call through /v1/completions.")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for the first byte and between bytes.")


class ProviderError(PlaygroundError):
    """A failed call, with what went wrong and what to do, in words.

    The message is redacted here, where it is built: it often quotes the server, and a server may echo the
    key it was sent. Every path to the UI, the log and stdout goes through this one constructor.
    """

    def __init__(self, kind: str, message: str, status: int | None = None, retry_after: float | None = None,
                 *, secrets: frozenset[str] = frozenset()):
        self.kind, self.status, self.retry_after = kind, status, retry_after
        super().__init__(redact(message, secrets))


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Stream:
    """Iterate for text deltas; afterwards `finish_reason`, `usage` and `first_token_at` are set."""

    chunks: Iterator[str]
    finish_reason: str | None = None
    usage: Usage | None = None
    first_token_at: float | None = None
    started_at: float = field(default_factory=time.perf_counter)

    def __iter__(self) -> Iterator[str]:
        for text in self.chunks:
            if text and self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            yield text


class Provider(Protocol):
    """One endpoint: its name and config, its models, and a stream per request."""

    name: str
    config: EndpointConfig

    def list_models(self) -> list[str]: ...

    def is_completion_model(self, model: str) -> bool: ...

    def uses_completions(self, model: str, persona_prefers: bool) -> bool: ...

    def stream_chat(self, model: str, messages: list[Message], params: SamplingParams,
                    dataset: str | None = None) -> Stream: ...

    def stream_completion(self, model: str, prompt: str, params: SamplingParams,
                          dataset: str | None = None) -> Stream: ...
