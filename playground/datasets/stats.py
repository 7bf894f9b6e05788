"""Token statistics and the estimated training cost of a dataset.

The epochs rule, context limits and prices follow OpenAI's fine-tuning docs and data-prep cookbook.
"""

import functools
import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..core.tokens import base_model, count_text, encoding_name, model_label, text_counter, tokenizer_ref
from .examples import DEFAULT_MODEL, Example, TrainingMessage

# The default-epochs rule OpenAI applies when n_epochs is not set (from its data-prep cookbook).
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

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


def counting_model(model: str, tokenizer: str | None = None) -> str:
    """What tokens are counted for: an open model's local tokenizer (a path; see tokens.tokenizer_ref) when one is
    given, else the model."""
    return tokenizer_ref(tokenizer.strip()) if tokenizer and tokenizer.strip() else model


def counted_label(model: str) -> str:
    return model_label(model)


def context_limit(model: str, context: int | None = None) -> int:
    """The training context: `context` when given (an open model's, set by the user), else the model's own."""
    if context:
        return int(context)
    name = base_model(model).lower()
    matches = [prefix for prefix in CONTEXT_LIMITS if name.startswith(prefix)]
    return CONTEXT_LIMITS[max(matches, key=len)] if matches else DEFAULT_CONTEXT_LIMIT


def example_tokens(example: Example, model: str) -> int:
    """tokens.count_messages of the conversation, with the per-model lookups done once: a large file counts
    every example, and those lookups cost as much as tokenizing a short message."""
    return ConversationTokens(model).count(example.conversation())


class ConversationTokens:
    """example_tokens of one conversation after another; a system prompt the same as the last one's is not
    tokenized again (a dataset usually repeats one system prompt in every example)."""

    def __init__(self, model: str):
        self.count_text, self.per_role = _token_counter(model)
        self.system_prompt, self.system_prompt_tokens = "", 0

    def count(self, turns: list[TrainingMessage]) -> int:
        total = 3
        for m in turns:
            if m.role != "system":
                total += self.per_role[m.role] + self.count_text(m.content)
                continue
            if m.content != self.system_prompt:
                self.system_prompt, self.system_prompt_tokens = m.content, self.count_text(m.content)
            total += self.per_role["system"] + self.system_prompt_tokens
        return total


@functools.cache
def _token_counter(model: str) -> tuple[Callable[[str], int], dict[str, int]]:
    # count_messages counts 3 per message plus the role's tokens; special-token text counts as plain text.
    per_role = {role: 3 + count_text(role, model) for role in ("system", "user", "assistant")}
    return text_counter(model), per_role


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
    if isinstance(token_counts, np.ndarray):
        return int(np.minimum(token_counts, limit).sum()) * epochs
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
                  prices: Mapping[str, float] | None = None, context: int | None = None) -> DatasetStats:
    """Token statistics and training cost of the examples that will be trained on (excluded ones are counted apart).

    Streams: only each example's token count is kept.
    """
    counts, excluded = array("I"), 0
    for example in examples:
        if example.excluded:
            excluded += 1
        else:
            counts.append(example_tokens(example, model))
    return stats_from_counts(counts, model, excluded, epochs, prices, context)


def stats_from_counts(counts: Sequence[int], model: str = DEFAULT_MODEL, excluded: int = 0, epochs: int | None = None,
                      prices: Mapping[str, float] | None = None, context: int | None = None) -> DatasetStats:
    """The statistics of examples with these token counts (one per example trained on)."""
    ordered = np.sort(np.asarray(counts, dtype=np.int64))  # a large file's counts, sorted without a list of ints
    n, limit = len(ordered), context_limit(model, context)
    middle = (int(ordered[n // 2]) if n % 2 else (int(ordered[n // 2 - 1]) + int(ordered[n // 2])) / 2) if n else 0
    return DatasetStats(
        model=model, examples=n, excluded=excluded,
        tokens_min=int(ordered[0]) if n else 0,
        tokens_median=middle,  # as statistics.median gives it: the middle count, or the mean of the two middle ones
        tokens_p95=int(ordered[max(0, math.ceil(0.95 * n) - 1)]) if n else 0,
        tokens_max=int(ordered[-1]) if n else 0,
        tokens_total=int(ordered.sum()), context_limit=limit, over_limit=n - int(np.searchsorted(ordered, limit, "right")),
        cost=_cost(model, ordered, epochs, prices, context),
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


def _cost(model: str, counts: Sequence[int] | np.ndarray, epochs: int | None, prices: Mapping[str, float] | None,
          context: int | None = None) -> CostEstimate:
    epochs = default_epochs(len(counts)) if epochs is None else epochs
    billed = billed_tokens(counts, context_limit(model, context), epochs)
    price = training_price(model, prices)
    return CostEstimate(model, epochs, billed, None if price is None else billed * price / 1_000_000)
