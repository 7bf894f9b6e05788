"""Which providers exist and which models they serve; resolves what the user picked or typed."""

import re
import threading
from collections.abc import Callable

from ..core.errors import UnknownModel
from . import Provider, ProviderError
from .lookup import LOOKUP_MODEL, LookupProvider
from .openai import make_provider, probe_local_servers

SEPARATOR = ":"
LIST_WAIT_S = 5.0  # how long a new page waits for the first model lists before showing what is known
# Listed models that do not chat (OpenAI's /v1/models lists them all): never a picker's default.
NOT_CHAT = re.compile(r"embed|whisper|tts|dall-e|moderation|transcribe|realtime|image|audio|search|rerank", re.I)


class Registry:
    def __init__(self, providers: list[Provider], lookup: LookupProvider,
                 extra_models: Callable[[], dict[str, dict[str, str]]] | None = None):
        self.lookup = lookup
        # Models no server lists until asked, with a note on where they came from: {provider: {model: note}}.
        # The app passes the fine-tunes of succeeded jobs in the store, so they reach every picker, across restarts.
        self._extra_models = extra_models or dict
        self._providers: dict[str, Provider] = {p.name: p for p in providers}
        self._models: dict[str, list[str]] = {p.name: list(p.config.models) for p in providers}
        self._problems: dict[str, str] = {}
        self._answered: set[str] = set()  # providers whose model list came back: their models are served
        self.listed = threading.Event()  # set once the first refresh has asked every provider
        self._lock = threading.Lock()
        # Refreshes run at once (the startup thread, Refresh models, a page): each answer is kept only if no refresh
        # begun later has answered for that provider, so a slow, stale answer never overwrites a newer one.
        self._refreshes = 0
        self._newest: dict[str, int] = {}

    def providers(self) -> list[Provider]:
        with self._lock:
            return list(self._providers.values())

    def add(self, provider: Provider) -> None:
        with self._lock:
            self._providers.setdefault(provider.name, provider)
            self._models.setdefault(provider.name, list(provider.config.models))

    def detect_local_servers(self) -> None:
        """Add local servers on their default ports; meant for a background thread at startup."""
        for config in probe_local_servers():
            self.add(make_provider(config))
            self.refresh(config.name)

    def refresh(self, name: str | None = None) -> dict[str, str]:
        """Ask each provider for its models; returns the problems met, by provider."""
        with self._lock:
            self._refreshes += 1
            ticket = self._refreshes
        for provider in self.providers():
            if name and provider.name != name:
                continue
            try:
                models, problem = provider.list_models(), None
            except ProviderError as e:
                models, problem = None, str(e)
            with self._lock:
                if ticket < self._newest.get(provider.name, 0):
                    continue  # a refresh begun later has already answered for this provider
                self._newest[provider.name] = ticket
                if models is None:
                    self._problems[provider.name] = problem or ""
                    self._answered.discard(provider.name)
                    continue
                self._models[provider.name] = models
                self._problems.pop(provider.name, None)
                self._answered.add(provider.name)
        if name is None:
            self.listed.set()
        with self._lock:
            return dict(self._problems)

    def models(self) -> dict[str, list[str]]:
        with self._lock:
            listed = {name: list(models) for name, models in self._models.items()}
        for name, extra in self._extra_models().items():
            if name in listed:
                listed[name] += [m for m in extra if m not in listed[name]]
        listed[self.lookup.name] = [LOOKUP_MODEL]
        return listed

    def choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a model picker; the value is provider:model."""
        out = []
        notes = self._extra_models()
        for provider, models in self.models().items():
            for model in models:
                label = f"{model}  ·  {provider}"
                if model in notes.get(provider, {}):
                    label += f"  ·  {notes[provider][model]}"
                if provider == self.lookup.name:
                    label = "lookup  ·  offline baseline"  # short enough to read whole in a model picker
                out.append((label, f"{provider}{SEPARATOR}{model}"))
        return out

    def served_chat_models(self) -> list[str]:
        """provider:model of every model an answering provider lists that chats (no base models, embeddings...)."""
        with self._lock:
            answered = {name: self._providers[name] for name in self._answered}
        return [f"{name}{SEPARATOR}{model}" for name, models in self.models().items() if name in answered
                for model in models if not answered[name].is_completion_model(model) and not NOT_CHAT.search(model)]

    def served(self, model: str | None) -> str | None:
        """provider:model for `model` (bare or provider:model) when an answering provider lists it, else None."""
        if not model:
            return None
        with self._lock:
            answered = set(self._answered)
        head, sep, rest = model.partition(SEPARATOR)
        for provider, models in self.models().items():
            if provider not in answered:
                continue
            if sep and head == provider and rest in models:
                return model
            if model in models:
                return f"{provider}{SEPARATOR}{model}"
        return None

    def default_model(self, preferred: str | None = None) -> str:
        """The preferred model if an answering provider lists it, else the first served chat model, else the
        lookup baseline, which always answers."""
        served = self.served(preferred) or next(iter(self.served_chat_models()), None)
        return served or f"{self.lookup.name}{SEPARATOR}{LOOKUP_MODEL}"

    def default_model_once_listed(self, preferred: str | None = None, timeout: float = LIST_WAIT_S) -> str:
        """default_model once the first model lists are in (they arrive in the background after startup), so a
        page opened right after startup starts on a served model, not on lookup; waits at most `timeout`."""
        self.listed.wait(timeout)
        return self.default_model(preferred)

    def after_persona_change(self, persona_model: str | None, picked: str | None) -> str:
        """The model once the user picks another persona: the persona's own when it is served (it was written for
        it), else the model the user had picked, which a persona change must not take away."""
        return self.served(persona_model) or (picked or "").strip() or self.default_model()

    def resolve(self, ref: str) -> tuple[Provider | LookupProvider, str]:
        ref = (ref or "").strip()
        if not ref:
            raise UnknownModel("Pick a model first.")
        head, sep, rest = ref.partition(SEPARATOR)
        if sep and head == self.lookup.name:
            return self.lookup, rest
        with self._lock:
            providers = dict(self._providers)
        models = {k: v for k, v in self.models().items() if k in providers}
        if sep and head in providers and rest:
            return providers[head], rest
        if ref == LOOKUP_MODEL:
            return self.lookup, LOOKUP_MODEL
        for name, served in models.items():
            if ref in served:
                return providers[name], ref
        if providers:
            # A typed name no list shows (a new fine-tune, say) goes to the first endpoint, OpenAI when configured.
            first = providers.get("openai") or next(iter(providers.values()))
            return first, ref
        raise UnknownModel(
            f"No provider serves '{ref}'. Set OPENAI_API_KEY, start a local server (Ollama, vLLM, llama.cpp, "
            "LM Studio), or add an endpoint to providers.json; the 'lookup' model works offline.")
