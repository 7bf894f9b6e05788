"""Demo mode: a chat with chosen personas and models for people who are not the host.

A guest picks a persona and a model from short lists, and types; nothing else is theirs to change. Every
request is checked here, server-side, because a guest can call the API directly as well as through the page:
the persona and model must be on the lists, max tokens is capped, a message and the prompt it makes have a size
limit, and requests are rate-limited per visitor and for everyone together. A visitor is who the client cannot
choose: the login and the address the request came from (never Gradio's session hash, which the client picks).
Exchanges are logged on the host like any other.
"""

import threading
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from ..chat.ask import ChatSettings, build_request
from ..chat.conversation import Conversation
from ..chat.personas import Persona
from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..core.tokens import count_messages
from .ratelimit import RateLimited, RateLimiter, seconds

WINDOW_S = 60.0


class DemoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    personas: list[str] = Field(min_length=1, description="Persona names a guest may chat with.")
    models: list[str] = Field(min_length=1, description="Models a guest may pick (provider:model or a name).")
    max_tokens: int = Field(256, ge=1, le=4096, description="Most tokens a reply may have, whatever the persona says.")
    per_session_per_minute: int = Field(10, ge=1, le=1000,
                                        description="Requests one visitor (login and address) may make a minute.")
    total_per_minute: int = Field(60, ge=1, le=10000, description="Requests all guests together may make a minute.")
    max_chars: int = Field(4000, ge=1, le=1_000_000, description="Most characters a guest's message may have.")
    max_prompt_tokens: int = Field(4096, ge=1, le=1_000_000,
                                   description="Most tokens the prompt sent to the model may have (system prompt, "
                                               "examples, the chat so far and the new message).")


class MessageTooLong(PlaygroundError):
    pass


def visitor(username: str | None, address: str | None) -> str:
    """The rate limit's key: what the client cannot choose. Behind a proxy, the address is the proxy's unless the
    server was told to trust it (--trusted-proxy)."""
    return f"{username or '-'}@{address or 'unknown'}"


def demo_settings(personas: dict[str, Persona], persona_names: str, model_names: str | None = None,
                  **limits) -> DemoSettings:
    """From the command line's comma-separated lists; models default to the personas' own."""
    names = _listed(persona_names)
    unknown = [n for n in names if n not in personas]
    if unknown:
        raise PlaygroundError(f"No persona named {', '.join(repr(n) for n in unknown)} for --demo: choose from "
                              f"{', '.join(sorted(personas))}.")
    models = _listed(model_names) if model_names else list(dict.fromkeys(
        personas[n].model or "offline:lookup" for n in names))
    if not models:
        raise PlaygroundError("--demo-models is empty: name at least one model, e.g. --demo-models gpt-4o-mini.")
    return DemoSettings(personas=names, models=models, **{k: v for k, v in limits.items() if v is not None})


def _listed(text: str | None) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in (text or "").split(",") if part.strip()))


class DemoChat:
    """What a guest may do, checked on every request."""

    def __init__(self, settings: DemoSettings, personas: dict[str, Persona],
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.personas = {name: personas[name] for name in settings.personas}
        self.per_session = RateLimiter(settings.per_session_per_minute, WINDOW_S, clock)
        self.everyone = RateLimiter(settings.total_per_minute, WINDOW_S, clock)
        self._lock = threading.Lock()

    def chat_settings(self, persona_name: str, model: str) -> ChatSettings:
        """The persona's own settings with max tokens capped; refused for anything not on the demo's lists."""
        persona = self.personas.get(persona_name)
        if persona is None:
            raise PlaygroundError(f"This demo offers the personas {', '.join(self.settings.personas)}, "
                                  f"not '{persona_name}'.")
        if model not in self.settings.models:
            raise PlaygroundError(f"This demo offers the models {', '.join(self.settings.models)}, not '{model}'.")
        settings = ChatSettings.for_persona(persona, model)
        settings.params = settings.params.model_copy(
            update={"max_tokens": min(settings.params.max_tokens, self.settings.max_tokens)})
        return settings

    def check_size(self, persona_name: str, settings: ChatSettings, conversation: Conversation, text: str) -> None:
        """Refuse a message over the character cap, or one whose prompt (with the chat so far) is over the token cap.
        `conversation` already ends with the message."""
        if len(text) > self.settings.max_chars:
            raise MessageTooLong(f"This message has {len(text)} characters; the demo takes at most "
                                 f"{self.settings.max_chars}. Shorten it and send it again.")
        # Counted as chat messages: a completion model's prompt text is the same words with prefixes, near enough.
        tokens = count_messages(build_request(self.personas[persona_name], settings, conversation).messages,
                                settings.model)
        if tokens > self.settings.max_prompt_tokens:
            raise MessageTooLong(f"With this message the prompt would be {tokens} tokens; the demo sends at most "
                                 f"{self.settings.max_prompt_tokens}. Shorten it, or start a New chat.")

    def admit(self, visitor_key: str) -> None:
        """Count one request for the visitor, or raise RateLimited saying how long to wait."""
        with self._lock:
            mine, everyone = self.per_session.wait(visitor_key), self.everyone.wait("*")
            if mine:
                raise RateLimited(
                    f"Demo limit reached: {plural(self.settings.per_session_per_minute, 'message')} a minute per visitor. "
                    f"Try again in {seconds(mine)} s.", mine)
            if everyone:
                raise RateLimited(
                    f"This demo is busy: it answers {plural(self.settings.total_per_minute, 'message')} a minute from all "
                    f"visitors together. Try again in {seconds(everyone)} s.", everyone)
            self.per_session.record(visitor_key)
            self.everyone.record("*")
