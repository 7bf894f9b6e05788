"""Fine-tuning examples and datasets: the Example model, duplicates, token stats, training cost and splits.

An example is a conversation to train on. A preference (DPO) example is a prompt that ends with a user turn
plus a `chosen` and a `rejected` reply; trainers that only do supervised fine-tuning see prompt + chosen.
"""

import functools
import json
import math
import random
import re
import statistics
import sys
import unicodedata
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .errors import PlaygroundError
from .messages import Message
from .tokens import base_model, count_text, encoding, encoding_name

# The default-epochs rule OpenAI applies when n_epochs is not set (from its data-prep cookbook).
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

DEFAULT_MODEL = "gpt-4o-mini"

# Training context per example; longer examples are cut from the end. Longest prefix wins.
CONTEXT_LIMITS: Mapping[str, int] = MappingProxyType({
    "gpt-4o": 65_536, "gpt-4.1": 65_536,
    "gpt-3.5-turbo": 16_385, "gpt-3.5-turbo-0125": 16_385, "gpt-3.5-turbo-1106": 16_385,
    "gpt-3.5-turbo-0613": 4_096,
})
DEFAULT_CONTEXT_LIMIT = 65_536

# USD per 1M training tokens. A default only: callers pass their own table when prices change.
TRAINING_PRICES: Mapping[str, float] = MappingProxyType({
    "gpt-4o-mini": 3.0, "gpt-3.5-turbo": 8.0, "gpt-4o": 25.0, "gpt-4.1": 25.0, "gpt-4.1-mini": 5.0,
})

SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_RATIOS = "80/20"
SIMILARITY_THRESHOLD = 0.9


class InvalidRatios(PlaygroundError):
    pass


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# --- the model -----------------------------------------------------------------------------------------


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


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    examples: list[Example] = Field(default_factory=list)


# --- duplicates ----------------------------------------------------------------------------------------


@functools.cache
def _punctuation() -> dict[int, str]:
    """Every Unicode punctuation character (category P*) mapped to a space, for str.translate (0.1 s, once)."""
    return {c: " " for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)).startswith("P")}


@functools.cache
def _ascii_punctuation() -> bytes:
    table = bytearray(range(256))
    for c in (c for c in _punctuation() if c < 128):
        table[c] = ord(" ")
    return bytes(table)


def normalize_text(text: str) -> str:
    """Case, punctuation and spacing removed, so trivially different copies compare equal."""
    if text.isascii():  # the same result, faster: NFKC leaves ASCII as it is and casefold is lower
        text = text.lower().encode("ascii").translate(_ascii_punctuation()).decode("ascii")
    else:
        text = unicodedata.normalize("NFKC", text).casefold().translate(_punctuation())
    return " ".join(text.split())


def exact_key(example: Example) -> str:
    turns = [(m.role, m.content) for m in example.conversation()]
    return json.dumps([turns, example.rejected], ensure_ascii=False)


def user_key(example: Example) -> str:
    return normalize_text(example.user_text())


def word_set(example: Example) -> frozenset[str]:
    text = " ".join(m.content for m in example.conversation() if m.role != "system")
    return frozenset(normalize_text(text).split())


@dataclass(frozen=True)
class DuplicateLink:
    earlier: int  # index into the examples given
    later: int
    kind: Literal["exact", "same_user_turns", "similar"]


def duplicate_links(examples: Sequence[Example], threshold: float = SIMILARITY_THRESHOLD) -> list[DuplicateLink]:
    """Pairs of examples that are the same or nearly the same.

    Copies are linked to the first of their kind only, so a thousand copies make a thousand links, not half a million.
    """
    links: list[DuplicateLink] = []
    first_exact: dict[str, int] = {}
    first_user: dict[str, int] = {}
    representatives: list[int] = []
    for i, example in enumerate(examples):
        key = exact_key(example)
        if key in first_exact:
            links.append(DuplicateLink(first_exact[key], i, "exact"))
            continue
        first_exact[key] = i
        user = user_key(example)
        if user and user in first_user:
            links.append(DuplicateLink(first_user[user], i, "same_user_turns"))
            continue
        if user:
            first_user[user] = i
        representatives.append(i)
    sets = [word_set(examples[i]) for i in representatives]
    for a, b in similar_pairs(sets, threshold):
        links.append(DuplicateLink(representatives[a], representatives[b], "similar"))
    return links


def similar_pairs(sets: Sequence[frozenset[str]], threshold: float) -> list[tuple[int, int]]:
    """Index pairs (earlier, later) with Jaccard similarity >= threshold.

    Prefix filtering: order each set's words rarest first; two sets that similar must share a word within
    their first len - ceil(threshold * len) + 1 words, so only those words are indexed and compared.
    """
    frequency = Counter(word for s in sets for word in s)
    index: dict[str, list[int]] = defaultdict(list)
    pairs = []
    for i, words in enumerate(sets):
        if not words:
            continue
        ordered = sorted(words, key=lambda w: (frequency[w], w))
        prefix = len(words) - math.ceil(threshold * len(words) - 1e-9) + 1
        candidates: set[int] = set()
        for word in ordered[:prefix]:
            candidates.update(index[word])
            index[word].append(i)
        for j in sorted(candidates):
            other = sets[j]
            if min(len(other), len(words)) < threshold * max(len(other), len(words)):
                continue
            if len(words & other) / len(words | other) >= threshold:
                pairs.append((j, i))
    return pairs


def duplicate_groups(examples: Sequence[Example]) -> list[list[int]]:
    """Indices grouped so that duplicates and near-duplicates share a group, groups in order of first member."""
    parent = list(range(len(examples)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for link in duplicate_links(examples):
        a, b = root(link.earlier), root(link.later)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(examples)):
        groups[root(i)].append(i)
    return [groups[k] for k in sorted(groups)]


# --- tokens and cost -----------------------------------------------------------------------------------


def context_limit(model: str) -> int:
    name = base_model(model).lower()
    matches = [prefix for prefix in CONTEXT_LIMITS if name.startswith(prefix)]
    return CONTEXT_LIMITS[max(matches, key=len)] if matches else DEFAULT_CONTEXT_LIMIT


def example_tokens(example: Example, model: str) -> int:
    """tokens.count_messages of the conversation, with the per-model lookups done once: a large file counts
    every example, and those lookups cost as much as tokenizing a short message."""
    encode, per_role = _token_counter(model)
    return 3 + sum(per_role[m.role] + len(encode(m.content)) for m in example.conversation())


@functools.cache
def _token_counter(model: str) -> tuple[Callable[[str], list[int]], dict[str, int]]:
    enc = encoding(encoding_name(model)[0])
    # count_messages counts 3 per message plus the role's tokens; special-token text counts as plain text.
    per_role = {role: 3 + count_text(role, model) for role in ("system", "user", "assistant")}
    return enc.encode_ordinary, per_role


def default_epochs(n_examples: int) -> int:
    """The epochs OpenAI picks when none are set: about 3, more for tiny sets, fewer for huge ones."""
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def billed_tokens(token_counts: Iterable[int], limit: int, epochs: int) -> int:
    """Tokens beyond the context are cut before training, so they are not billed."""
    return sum(min(limit, n) for n in token_counts) * epochs


def training_price(model: str, prices: Mapping[str, float] | None = None) -> float | None:
    """USD per 1M training tokens for the longest matching table key, None when the model is not priced."""
    table = TRAINING_PRICES if prices is None else prices
    name = base_model(model)
    keys = [k for k in table if name.startswith(k)]
    return table[max(keys, key=len)] if keys else None


@dataclass(frozen=True)
class CostEstimate:
    model: str
    epochs: int
    billed_tokens: int
    usd: float | None


@dataclass(frozen=True)
class DatasetStats:
    model: str
    examples: int
    excluded: int
    tokens_min: int
    tokens_median: float
    tokens_p95: int
    tokens_max: int
    tokens_total: int
    context_limit: int
    over_limit: int
    cost: CostEstimate


def dataset_stats(examples: Iterable[Example], model: str = DEFAULT_MODEL, epochs: int | None = None,
                  prices: Mapping[str, float] | None = None) -> DatasetStats:
    """Token statistics and training cost of the examples that will be trained on (excluded ones are counted apart).

    Streams: only each example's token count is kept.
    """
    counts, excluded = array("I"), 0
    for example in examples:
        if example.excluded:
            excluded += 1
        else:
            counts.append(example_tokens(example, model))
    return stats_from_counts(counts, model, excluded, epochs, prices)


def stats_from_counts(counts: Sequence[int], model: str = DEFAULT_MODEL, excluded: int = 0, epochs: int | None = None,
                      prices: Mapping[str, float] | None = None) -> DatasetStats:
    """The statistics of examples with these token counts (one per example trained on)."""
    counts = sorted(counts)
    limit = context_limit(model)
    return DatasetStats(
        model=model, examples=len(counts), excluded=excluded,
        tokens_min=counts[0] if counts else 0,
        tokens_median=statistics.median(counts) if counts else 0,
        tokens_p95=counts[max(0, math.ceil(0.95 * len(counts)) - 1)] if counts else 0,
        tokens_max=counts[-1] if counts else 0,
        tokens_total=sum(counts), context_limit=limit, over_limit=sum(1 for n in counts if n > limit),
        cost=_cost(model, counts, epochs, prices),
    )


def training_costs(examples: Sequence[Example], epochs: int | None = None,
                   prices: Mapping[str, float] | None = None) -> list[CostEstimate]:
    """The estimated cost on every base model in the price table, each counted with its own tokenizer and context."""
    included = [e for e in examples if not e.excluded]
    by_encoding: dict[str, list[int]] = {}
    estimates = []
    for model in (TRAINING_PRICES if prices is None else prices):
        encoding = encoding_name(model)[0]
        if encoding not in by_encoding:
            by_encoding[encoding] = [example_tokens(e, model) for e in included]
        estimates.append(_cost(model, by_encoding[encoding], epochs, prices))
    return estimates


def _cost(model: str, counts: Sequence[int], epochs: int | None, prices: Mapping[str, float] | None) -> CostEstimate:
    epochs = default_epochs(len(counts)) if epochs is None else epochs
    billed = billed_tokens(counts, context_limit(model), epochs)
    price = training_price(model, prices)
    return CostEstimate(model, epochs, billed, None if price is None else billed * price / 1_000_000)


# --- splits --------------------------------------------------------------------------------------------


def parse_ratios(ratios: str | Sequence[float]) -> tuple[float, ...]:
    """'80/20', '60/20/20', [0.6, 0.2, 0.2] -> fractions that add up to 1."""
    if isinstance(ratios, str):
        try:
            parts = [float(p) for p in re.split(r"[/:,]", ratios.strip())]
        except ValueError:
            raise InvalidRatios(f"'{ratios}' is not a split: write ratios like 80/20 or 60/20/20.") from None
    else:
        parts = [float(p) for p in ratios]
    if not 2 <= len(parts) <= len(SPLIT_NAMES):
        raise InvalidRatios(f"a split has 2 or 3 parts ({'/'.join(SPLIT_NAMES)}), not {len(parts)}: e.g. 80/20 or 60/20/20.")
    if any(not math.isfinite(p) or p <= 0 for p in parts):
        raise InvalidRatios("every part of a split must be a positive number, e.g. 80/20.")
    total = sum(parts)
    return tuple(p / total for p in parts)


def split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder sizes that add up to n, each at least 1 when there are enough examples."""
    raw = [n * f for f in fractions]
    sizes = [math.floor(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (sizes[i] - raw[i], i))[: n - sum(sizes)]:
        sizes[i] += 1
    if n >= len(sizes):
        for i, size in enumerate(sizes):
            if size == 0:
                sizes[i] = 1
                sizes[sizes.index(max(sizes))] -= 1
    return sizes


def split_examples(examples: Sequence[Example], ratios: str | Sequence[float] = DEFAULT_RATIOS,
                   seed: int = 0) -> dict[str, list[Example]]:
    """A seeded shuffle cut by ratios into train/validation(/test); excluded examples are left out.

    Duplicates and near-duplicates move as one group, so no example is scored on a copy of itself it trained on.
    """
    fractions = parse_ratios(ratios)
    included = [e for e in examples if not e.excluded]
    groups = duplicate_groups(included)
    random.Random(seed).shuffle(groups)
    targets = split_sizes(len(included), fractions)
    parts: list[list[Example]] = [[] for _ in fractions]
    current = 0
    for group in groups:
        while current < len(parts) - 1 and len(parts[current]) >= targets[current]:
            current += 1
        parts[current].extend(included[i] for i in group)
    return dict(zip(SPLIT_NAMES, parts))
