"""Train/validation(/test) splits: ratios, sizes, and a seeded cut that keeps copies in one split."""

import math
import random
import re
from collections.abc import Sequence

from ..core.errors import PlaygroundError
from ..core.plural import plural
from .examples import Example
from .validation.duplicates import duplicate_groups

SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_RATIOS = "80/20"


class InvalidRatios(PlaygroundError):
    pass


class EmptySplit(PlaygroundError):
    """A split that would leave a part with no example: an empty file trains or scores nothing."""

    def __init__(self, ratios: str, examples: int, groups: int, empty: list[str]):
        parts = " and ".join(f"the {name} part" for name in empty)
        together = (f"; copies and near-copies stay together, so they make only {plural(groups, 'group')}"
                    if groups < examples else "")
        super().__init__(f"A {ratios} split of {plural(examples, 'example')} would leave {parts} empty{together}. "
                         f"Choose a different ratio (e.g. 80/20) or fewer parts, or add examples.")


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
    A split that would leave a part empty is refused (EmptySplit) rather than written as an empty file.
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
    split = dict(zip(SPLIT_NAMES, parts))
    empty = [name for name, part in split.items() if not part]
    if included and empty:
        shown = ratios if isinstance(ratios, str) else "/".join(f"{r:g}" for r in ratios)
        raise EmptySplit(shown.strip(), len(included), len(groups), empty)
    return split
