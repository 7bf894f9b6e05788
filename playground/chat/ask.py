"""One reply: build exactly the request the model will get, stream it, measure it, log it."""

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from pydantic import BaseModel, Field

from ..core.errors import EmptyMessage
from ..core.messages import Message
from ..core.params import SamplingParams
from ..core.pricing import cost_usd
from ..core.prompts import fill, fill_messages, render_prompt
from ..core.store import Exchange, SavedConversation
from ..core.tokens import count_messages, count_text
from ..providers import ProviderError, Stream
from .conversation import Conversation, Turn
from .personas import Persona
from .services import Services

logger = logging.getLogger(__name__)

STOPPED = "Stopped before the reply was finished."


class ChatSettings(BaseModel):
    """What the user chose in the settings panel; stored with the conversation so it can be continued."""

    persona: str
    model: str
    system_prompt: str = ""
    params: SamplingParams = Field(default_factory=SamplingParams)
    variables: dict[str, str] = Field(default_factory=dict)
    speaker: str | None = Field(None, description="Who the user speaks as: each user turn goes out as 'Name: ...'. "
                                                   "None: the persona's speaker; empty: no prefix.")

    def speaking_persona(self, persona: Persona) -> Persona:
        """The persona with the speaker chosen here, so every prefix (request, dataset example) is the one sent."""
        if self.speaker is None:
            return persona
        return persona.model_copy(update={"speaker": self.speaker.strip() or None})

    @classmethod
    def for_persona(cls, persona: Persona, model: str) -> "ChatSettings":
        return cls(persona=persona.name, model=model, system_prompt=persona.system_prompt,
                   params=persona.params, variables=dict(persona.variables))


@dataclass
class Request:
    mode: str
    messages: list[Message]
    prompt: str | None = None

    def as_logged(self, model: str, params: SamplingParams) -> dict:
        body = {"model": model, **params.api_kwargs()}
        if self.prompt is not None:
            body["prompt"] = self.prompt
        else:
            body["messages"] = [m.as_openai() for m in self.messages]
        return body


def build_request(persona: Persona, settings: ChatSettings, conversation: Conversation,
                  as_prompt: bool = False) -> Request:
    """System prompt, few-shot seed turns, then the chat, with {{variables}} filled and speaker prefixes added.

    `as_prompt` renders it as text for /v1/completions with the persona's prompt format; the provider
    decides (see Provider.uses_completions), since the endpoint follows the model, not the persona.
    """
    values = {**persona.variables, **settings.variables}
    system = [Message(role="system", content=fill(settings.system_prompt, values))] if settings.system_prompt.strip() else []
    seeds = fill_messages(persona.seed_messages, values)
    # Each user turn keeps the name it was first sent under; the pending one takes the speaker chosen now.
    speaking = settings.speaking_persona(persona)
    history = conversation.history(lambda t: speaking.speaker_prefixed(t.content, t.speaker))
    messages = system + seeds + history
    if as_prompt:
        return Request("completion", messages, render_prompt(messages, persona.prompt_format))
    return Request("chat", messages)


@dataclass
class Metrics:
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    counted: bool
    cost_usd: float | None
    ttft_ms: float | None
    duration_ms: float

    def line(self) -> str:
        approx = "~" if self.counted else ""
        cost = f"${self.cost_usd:.6f}" if self.cost_usd is not None else "no price set"
        ttft = f"first token {self.ttft_ms / 1000:.2f} s" if self.ttft_ms is not None else "no tokens"
        return (f"{self.model} · {approx}{self.prompt_tokens} + {approx}{self.completion_tokens} tokens · {cost} · "
                f"{ttft} · {self.duration_ms / 1000:.2f} s")


def check_message(text: str) -> str:
    if not (text or "").strip():
        raise EmptyMessage()
    return text


def stream_reply(services: Services, persona: Persona, settings: ChatSettings,
                 conversation: Conversation) -> Iterator[Conversation]:
    """Answer the pending user turn, yielding the conversation as the reply grows.

    The exchange is logged as the request is sent (in flight, with the conversation so far) and again when
    the reply ends: finished, failed, or stopped (the generator being closed). Nothing is written per token.
    Errors that occur before anything is sent (unfilled variables, unknown model) are raised instead.
    """
    provider, model = services.registry.resolve(settings.model)
    pending = next((t for t in reversed(conversation.turns) if t.role == "user"), None)
    if pending is not None:  # a retry or an edit is sent again under the speaker chosen now
        pending.speaker = settings.speaking_persona(persona).speaker or ""
    request = build_request(persona, settings, conversation, provider.uses_completions(model, persona.mode == "completion"))
    reply = conversation.turns[-1] if conversation.turns[-1].role == "assistant" else None
    if reply is None:
        conversation.turns.append(reply := Turn(role="assistant", content=""))
    reply.exchange_id = None  # a retried or regenerated turn is a new exchange
    sent = _exchange(persona, settings, conversation, request, provider.name, model)
    reply.exchange_id = services.store.start_exchange(sent, _saved(persona, settings, conversation, provider.name))
    started = time.perf_counter()
    stream: Stream | None = None
    error, status = None, "done"
    try:
        if request.mode == "completion":
            stream = provider.stream_completion(model, request.prompt, settings.params, persona.dataset)
        else:
            stream = provider.stream_chat(model, request.messages, settings.params, persona.dataset)
        for delta in stream:
            if conversation.stop_requested:
                error, status = STOPPED, "stopped"
                break
            reply.content += delta
            yield conversation
    except ProviderError as e:
        error, status = str(e), "error"
    except GeneratorExit:
        error, status = STOPPED, "stopped"
        raise
    except Exception as e:  # a bug or an unforeseen reply shape: keep the partial reply and log it, never lose it
        logger.exception("reply from %s failed", settings.model)
        error, status = f"Unexpected error while reading the reply: {type(e).__name__}: {e}", "error"
    finally:
        if stream is not None:
            close = getattr(stream.chunks, "close", None)
            close and close()
        _finish(services, persona, settings, conversation, request, sent, stream, started, error, status)
    yield conversation


def _exchange(persona, settings, conversation, request, provider_name, model) -> Exchange:
    return Exchange(
        conversation_id=conversation.id, turn=len(conversation.turns) - 1, persona=persona.name, model=model,
        provider=provider_name, mode=request.mode, request=request.as_logged(model, settings.params))


def _saved(persona, settings, conversation, provider_name) -> SavedConversation:
    return SavedConversation(
        conversation.id, title=conversation.title(), persona=persona.name, provider=provider_name,
        model=settings.model, settings=settings.model_dump(mode="json"),
        transcript=[t.model_dump() for t in conversation.turns], continued_from=conversation.continued_from)


def _finish(services, persona, settings, conversation, request, sent, stream, started, error, status) -> None:
    reply = conversation.turns[-1]
    model = sent.model
    duration_ms = (time.perf_counter() - started) * 1000
    usage = stream.usage if stream else None
    if usage:
        prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
    else:
        prompt = count_text(request.prompt, model) if request.prompt is not None else count_messages(request.messages, model)
        prompt_tokens, completion_tokens = prompt, count_text(reply.content, model)
    # A request that was refused or never reached the server is not billed.
    cost = cost_usd(model, prompt_tokens, completion_tokens, services.prices()) if stream else 0.0
    metrics = Metrics(
        model=model, provider=sent.provider, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        counted=usage is None, cost_usd=cost,
        ttft_ms=(stream.first_token_at - stream.started_at) * 1000 if stream and stream.first_token_at else None,
        duration_ms=duration_ms,
    )
    reply.error = error
    reply.incomplete = error is not None
    reply.metrics = metrics.line()
    done = replace(sent, reply=reply.content, finish_reason=stream.finish_reason if stream else None,
                   prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, tokens_counted=usage is None,
                   cost_usd=metrics.cost_usd, ttft_ms=metrics.ttft_ms, duration_ms=duration_ms, error=error,
                   incomplete=error is not None, status=status)
    services.store.finish_exchange(reply.exchange_id, done, _saved(persona, settings, conversation, sent.provider))
