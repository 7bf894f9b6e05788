"""OpenAI-compatible endpoints, all reached through the official `openai` SDK.

OpenAI itself, vLLM, Ollama, llama.cpp server and LM Studio all speak the same API, so one client
class serves them; only the base URL and key differ. Only this package imports openai (this module and
`jobs`, which holds the fine-tuning calls).
"""

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import openai
from pydantic import BaseModel, ConfigDict

from ..core.messages import Message, to_openai
from ..core.params import SamplingParams
from ..core.plural import plural
from ..core.prompts import parse_model_file
from ..core.redaction import configured_secrets, redact
from . import EndpointConfig, ProviderError, Stream, Usage

# Ports the common local servers listen on by default.
LOCAL_SERVERS = {
    "ollama": "http://127.0.0.1:11434/v1",
    "llamacpp": "http://127.0.0.1:8080/v1",
    "vllm": "http://127.0.0.1:8000/v1",
    "lmstudio": "http://127.0.0.1:1234/v1",
}


# OpenAI families served only through chat completions.
CHAT_MODEL_FAMILIES = ("gpt-3.5-turbo", "gpt-4", "gpt-5", "chatgpt", "o1", "o3", "o4")


class ProvidersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: list[EndpointConfig]


class OpenAIProvider:
    """One OpenAI-compatible endpoint."""

    def __init__(self, config: EndpointConfig, api_key: str | None, secrets: frozenset[str] = frozenset()):
        self.config = config
        self.name = config.name
        self.has_key = bool(api_key)
        # Its own key and every other configured one: a proxy may echo any of them.
        self.secrets = frozenset(secrets) | ({api_key} if api_key else set())
        # Retries are off: a retried call would hide its latency and cost, and the user decides.
        self.client = openai.OpenAI(
            base_url=config.base_url, api_key=api_key or "no-key-needed", max_retries=0,
            # The SDK's stubs name its vendored httpx2 types; httpx's own Timeout is what it accepts at runtime.
            timeout=httpx.Timeout(config.timeout, connect=min(5.0, config.timeout)),  # type: ignore[arg-type]
        )

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def error(self, kind: str, message: str, status: int | None = None,
              retry_after: float | None = None) -> ProviderError:
        return ProviderError(kind, message, status, retry_after, secrets=self.secrets)

    def is_completion_model(self, model: str) -> bool:
        return model in self.config.completion_models or model.removeprefix("ft:").split(":")[0] in (
            "davinci-002", "babbage-002")

    def uses_completions(self, model: str, persona_prefers: bool) -> bool:
        """Base models only have /v1/completions. A completion persona also sends unknown models there
        (a base model on vLLM, say), but never a known chat model, which that endpoint would refuse."""
        if self.is_completion_model(model):
            return True
        return persona_prefers and not model.removeprefix("ft:").startswith(CHAT_MODEL_FAMILIES)

    def list_models(self) -> list[str]:
        try:
            listed = [m.id for m in self.client.models.list()]
        except openai.OpenAIError as e:
            raise self._explain(e, model=None) from None
        return sorted(set(listed) | set(self.config.models) | set(self.config.completion_models))

    def stream_chat(self, model: str, messages: list[Message], params: SamplingParams, dataset: str | None = None) -> Stream:
        # to_openai gives plain dicts; the SDK's stubs want its TypedDict message params (the same shape).
        return self._stream(model, lambda: self.client.chat.completions.create(  # type: ignore[call-overload]
            model=model, messages=to_openai(messages), stream=True,
            stream_options={"include_usage": True}, **params.api_kwargs()))

    def stream_completion(self, model: str, prompt: str, params: SamplingParams, dataset: str | None = None) -> Stream:
        return self._stream(model, lambda: self.client.completions.create(
            model=model, prompt=prompt, stream=True,
            stream_options={"include_usage": True}, **params.api_kwargs()), completions=True)

    def _stream(self, model: str, create, completions: bool = False) -> Stream:
        stream = Stream(iter(()))
        try:
            response = create()
        except openai.OpenAIError as e:
            raise self._explain(e, model, completions) from None
        stream.chunks = self._chunks(response, stream, model)
        return stream

    def _chunks(self, response, stream: Stream, model: str) -> Iterator[str]:
        received = 0
        try:
            for chunk in response:
                if chunk.usage:
                    stream.usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    text = choice.delta.content if hasattr(choice, "delta") else choice.text
                    if choice.finish_reason:
                        stream.finish_reason = choice.finish_reason
                    if text:
                        received += len(text)
                        yield text
        except openai.APIStatusError as e:
            raise self._explain(e, model) from None
        except Exception as e:  # noqa: BLE001 - an error event, a dropped connection, an odd chunk: may quote the key
            raise self.error(
                "broken_stream",
                f"The stream from {self.name} broke off after {plural(received, 'character')} ({_short(e)}). "
                f"{_what_is_kept(received)}") from None
        finally:
            response.close()
        if stream.finish_reason is None:
            raise self.error(
                "broken_stream",
                f"The stream from {self.name} ended before the model finished (no finish reason after {received} "
                f"characters). {_what_is_kept(received)}")

    def _explain(self, e: Exception, model: str | None, completions: bool = False) -> ProviderError:
        """What went wrong and what to do; every server text in it is redacted by `self.error`."""
        where = f"{self.name} ({self.config.base_url})"
        key_hint = f"the key in ${self.config.api_key_env}" if self.config.api_key_env else "the API key"
        if isinstance(e, openai.APITimeoutError):
            return self.error("timeout", f"{where} sent nothing for {self.config.timeout:g} s. The server may be "
                              "overloaded or still loading the model: try again, or raise the endpoint's timeout.")
        if isinstance(e, openai.APIConnectionError):
            return self.error("connection", f"Cannot connect to {where}. Is the server running? "
                              "Start it, or pick another model.")
        if isinstance(e, openai.AuthenticationError):
            if self.config.api_key_env and not self.has_key:
                return self.error("auth", f"{where} needs a key (401), but ${self.config.api_key_env} is not set. "
                                  "Set it and restart the app.", 401)
            return self.error("auth", f"{where} rejected {key_hint} (401). Check the key and restart the app.", 401)
        if isinstance(e, openai.PermissionDeniedError):
            return self.error("permission", f"{where} refused access (403): {_server_message(e)}", 403)
        if isinstance(e, openai.NotFoundError):
            return self._not_found(e, where, model, completions)
        if isinstance(e, openai.RateLimitError):
            retry_after = _retry_after(e.response)  # type: ignore[arg-type]  # httpx2 in the SDK's stubs
            wait = f"Wait {retry_after:g} s and try again." if retry_after else "Wait a moment and try again."
            return self.error("rate_limit", f"{where} is rate-limiting requests (429). {wait}", 429, retry_after)
        if isinstance(e, openai.APIStatusError):
            if e.status_code >= 500:
                return self.error("server", f"{where} failed with a server error ({e.status_code}). Try again; if "
                                  "it keeps failing, check the server's logs.", e.status_code)
            return self.error("bad_request", f"{where} refused the request ({e.status_code}): "
                              f"{_server_message(e)}", e.status_code)
        return self.error("unknown", f"{where} failed: {_short(e)}")

    def _not_found(self, e: openai.NotFoundError, where: str, model: str | None, completions: bool) -> ProviderError:
        if model is not None and _names_model(e, model):
            return self.error("not_found", f"{where} has no model '{model}' (404). Pick one from the Model list "
                              "or check the spelling.", 404)
        if completions:
            # Chat-only servers (many vLLM/Ollama setups) lack /v1/completions; the base URL is fine.
            return self.error("not_found", f"this persona sends base models to /v1/completions; {where} has no such "
                              "path: pick a base model or switch the persona to chat mode", 404)
        # A 404 that is not about the model means the path is wrong, usually a base URL without /v1.
        return self.error("not_found", f"{where} has no such API path (404: {_server_message(e)}). Check "
                          "the endpoint's base URL: it usually ends in /v1.", 404)


def _what_is_kept(received: int) -> str:
    if received:
        return "The partial reply is kept and marked incomplete; Retry to ask again."
    return "Nothing of the reply arrived; Retry to ask again."


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _names_model(e: openai.APIStatusError, model: str) -> bool:
    return getattr(e, "code", None) == "model_not_found" or model in _server_message(e)


def _server_message(e: openai.APIStatusError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    return str(body.get("message") or e.message)


def _short(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200] or type(e).__name__


def load_providers_file(path: Path) -> list[EndpointConfig]:
    return parse_model_file(Path(path), ProvidersFile).providers


def openai_endpoint(environ: dict) -> EndpointConfig | None:
    """OpenAI from the SDK's own variables; None when there is no key."""
    if not environ.get("OPENAI_API_KEY"):
        return None
    return EndpointConfig(name="openai", base_url=environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
                          api_key_env="OPENAI_API_KEY")


def make_provider(config: EndpointConfig, environ: Mapping[str, str] | None = None,
                  secrets: frozenset[str] | None = None) -> OpenAIProvider:
    """The endpoint's client; `secrets` (default: every key in `environ`) are redacted from its errors."""
    environ = os.environ if environ is None else environ
    if secrets is None:
        secrets = configured_secrets(environ, [config.api_key_env])
    return OpenAIProvider(config, environ.get(config.api_key_env) if config.api_key_env else None, secrets)


def probe_local_servers(timeout: float = 0.3) -> list[EndpointConfig]:
    """Local servers answering on their default ports; quick, so it can run beside startup."""
    found = []
    for name, base_url in LOCAL_SERVERS.items():
        try:
            response = httpx.get(base_url + "/models", timeout=timeout)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            found.append(EndpointConfig(name=name, base_url=base_url))
    return found
