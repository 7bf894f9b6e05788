"""The offline baseline: answer with the assistant turn of the most similar example in the persona's dataset.

It needs no server, so a fresh install can chat at once, and it stays useful as a yardstick:
a fine-tune should beat a lookup of its own training data.
"""

import hashlib
import json
import re
from pathlib import Path

from ..core.messages import Message
from ..core.params import SamplingParams
from ..core.store import Store
from . import EndpointConfig, Stream

LOOKUP_MODEL = "lookup"
SPEAKER_PREFIX = re.compile(r"^[\w .'-]{1,40}:\s+")


def dialogue_pairs(path: Path) -> list[tuple[str, str]]:
    """(user turn, assistant reply) for every reply in a chat JSONL file; unreadable lines are passed over."""
    pairs = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        try:
            messages = json.loads(line)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        for prev, nxt in zip(messages, messages[1:]):
            if prev.get("role") == "user" and nxt.get("role") == "assistant":
                pairs.append((SPEAKER_PREFIX.sub("", str(prev.get("content", ""))), str(nxt.get("content", ""))))
    return pairs


class LookupProvider:
    name = "offline"
    config = EndpointConfig(name="offline", base_url="sqlite://lookup")

    def __init__(self, store: Store, datasets_dir: Path):
        self.store = store
        self.datasets_dir = Path(datasets_dir)

    def list_models(self) -> list[str]:
        return [LOOKUP_MODEL]

    def is_completion_model(self, model: str) -> bool:
        return False

    def uses_completions(self, model: str, persona_prefers: bool) -> bool:
        return False

    def stream_chat(self, model: str, messages: list[Message], params: SamplingParams, dataset: str | None = None) -> Stream:
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        return self._answer(question, dataset, params)

    def stream_completion(self, model: str, prompt: str, params: SamplingParams, dataset: str | None = None) -> Stream:
        lines = [line for line in prompt.splitlines() if line.strip()]
        question = lines[-2] if len(lines) >= 2 else prompt
        return self._answer(question, dataset, params)

    def _answer(self, question: str, dataset: str | None, params: SamplingParams) -> Stream:
        reply = self._reply(SPEAKER_PREFIX.sub("", question), dataset)
        words = re.findall(r"\S+\s*", reply)[: params.max_tokens]
        finish = "length" if len(words) < len(re.findall(r"\S+\s*", reply)) else "stop"
        stream = Stream(iter(words), finish_reason=finish)
        return stream

    def _reply(self, question: str, dataset: str | None) -> str:
        if not dataset:
            return "(lookup) This persona has no dataset to look answers up in. Pick a persona with a dataset, or a real model."
        path = self.datasets_dir / dataset
        if not path.exists():
            return f"(lookup) The dataset file {dataset} is missing from {self.datasets_dir}."
        self.store.index_lookup(dataset, hashlib.sha1(path.read_bytes()).hexdigest(), dialogue_pairs(path))
        return self.store.lookup(dataset, question) or "(lookup) No example in the dataset resembles that message."
