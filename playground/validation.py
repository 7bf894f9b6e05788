"""Check a dataset before it costs a training run.

The format checks are OpenAI's data-prep cookbook's; the rest catch the dataset bugs that made fine-tunes look
good or bad for the wrong reason: copies of an example, the same example in train and test, words leaked
into every input, answers listed in the order of the input, a training system prompt that is not the one deployed.
Errors block an export; warnings are for a person to judge.
"""

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from .datasets import DEFAULT_MODEL, Example, context_limit, duplicate_links, example_tokens, normalize_text
from .formats import locate, parse_lines

MIN_EXAMPLES = 10  # OpenAI refuses smaller training files
PATTERN_MIN_EXAMPLES = 5  # below this, "most examples" means too little to call a pattern
COMMON_WORD_SHARE = 0.9
ORDER_LEAK_SHARE = 0.8
ORDERED_PAIRS_SHARE = 0.9
MIN_LIST_ITEMS = 3
MAX_ITEM_WORDS = 5

STOPWORDS = frozenset("""
a an the and or but if of to in on at by for with from as is are was were be been being it its this that these
those i you he she we they me him her us them my your our their what which who whom how why when where not no
do does did have has had can could will would should may might must so than then there here about into over
under up down out off very just also any all each some such only own same too please
""".split())

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    line: int | None = None
    example_id: int | None = None

    @property
    def where(self) -> str:
        if self.line is not None:
            return f"line {self.line}"
        if self.example_id is not None:
            return f"example {self.example_id}"
        return "dataset"

    def __str__(self) -> str:
        return f"{self.where}: {self.severity} {self.code}: {self.message}"


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def validate_file(path: Path, model: str = DEFAULT_MODEL, deploy_prompt: str | None = None,
                  format: str | None = None, expected_phrases: Sequence[str] = ()) -> list[Finding]:
    """Every finding of a JSONL file, each at a line; dataset-wide ones sit at the last line read."""
    examples, findings, last_line = [], [], 1
    for parsed in parse_lines(path, format):
        last_line = parsed.line
        if parsed.example is not None:
            examples.append(parsed.example)
        findings += [Finding("error", p.code, p.message, line=p.line) for p in parsed.problems]
    findings += validate_examples(examples, model, deploy_prompt, expected_phrases)
    findings = [f if f.line is not None else replace(f, line=last_line) for f in findings]
    return sorted(findings, key=lambda f: f.line)


def validate_examples(examples: Sequence[Example], model: str = DEFAULT_MODEL, deploy_prompt: str | None = None,
                      expected_phrases: Sequence[str] = ()) -> list[Finding]:
    """Findings for examples that will be trained on: each names the example's id (or, unsaved, its file line)."""
    examples = [e for e in examples if not e.excluded]
    findings: list[Finding] = []
    for example in examples:
        findings += _empty_content(example) + _missing_roles(example) + _too_long(example, model)
    findings += _duplicates(examples)
    findings += _system_prompts(examples, deploy_prompt)
    findings += _order_leak(examples)
    reference = deploy_prompt if deploy_prompt is not None else _most_common_system_prompt(examples)
    findings += _common_user_words(examples, " ".join([reference or "", *expected_phrases]))
    findings += _size(examples)
    # By place in the file or id; dataset-wide findings last.
    return sorted(findings, key=lambda f: (f.line is None and f.example_id is None, f.line or f.example_id or 0))


def validate_splits(splits: Mapping[str, Sequence[Example]]) -> list[Finding]:
    """An error for every example whose copy, or near copy, is in another split: its score would be inflated."""
    placed = [(name, e) for name, examples in splits.items() for e in examples if not e.excluded]
    findings = []
    for link in duplicate_links([e for _, e in placed]):
        (first_split, first), (split, example) = placed[link.earlier], placed[link.later]
        if first_split != split:
            findings.append(_at(example, "error", "duplicate_across_splits",
                                f"is in {split}, and {_KIND_TEXT[link.kind]} {locate(first)} is in {first_split}: "
                                "an example scored on what it trained on looks better than it is; keep it in one split."))
    return findings


def _at(example: Example, severity: Severity, code: str, message: str) -> Finding:
    if example.id is not None:
        return Finding(severity, code, message, example_id=example.id)
    return Finding(severity, code, message, line=example.source.line)


# --- per example ---------------------------------------------------------------------------------------


def _empty_content(example: Example) -> list[Finding]:
    findings = [_at(example, "error", "missing_content", f"message {n} ({m.role}) is empty: write its text or delete it.")
                for n, m in enumerate(example.messages, start=1) if not m.content.strip()]
    for name in ("chosen", "rejected"):
        value = getattr(example, name)
        if value is not None and not value.strip():
            findings.append(_at(example, "error", "missing_content", f"the {name} reply is empty: write it."))
    return findings


def _missing_roles(example: Example) -> list[Finding]:
    roles = {m.role for m in example.messages}
    findings = []
    if "system" not in roles:
        findings.append(_at(example, "warning", "missing_system_message",
                            "has no system message: add the system prompt you will deploy with."))
    if "user" not in roles:
        findings.append(_at(example, "warning", "missing_user_message",
                            "has no user message: add the input the reply answers."))
    return findings


def _too_long(example: Example, model: str) -> list[Finding]:
    tokens, limit = example_tokens(example, model), context_limit(model)
    if tokens <= limit:
        return []
    return [_at(example, "warning", "over_context_limit",
                f"has {tokens:,} tokens, over the {limit:,}-token training context of {model}: "
                "it will be cut from the end; shorten or split it.")]


# --- across examples -----------------------------------------------------------------------------------

_KIND_TEXT = {
    "exact": "an exact copy at",
    "same_user_turns": "the same user turns (ignoring case and punctuation) at",
    "similar": "a near copy (90% of words shared) at",
}
_KIND_ADVICE = {
    "exact": "remove one: a copy counts double and can land in both train and test.",
    "same_user_turns": "keep the better answer, or make the inputs differ.",
    "similar": "keep one, or make them differ.",
}
_KIND_RANK = {"exact": 0, "same_user_turns": 1, "similar": 2}


def _duplicates(examples: Sequence[Example]) -> list[Finding]:
    """One warning per later copy, naming its earliest (and closest) original."""
    best: dict[int, tuple] = {}
    for link in duplicate_links(examples):
        candidate = (_KIND_RANK[link.kind], link.earlier, link.kind)
        best[link.later] = min(best.get(link.later, candidate), candidate)
    findings = []
    for later, (_, earlier, kind) in sorted(best.items()):
        code = "duplicate_example" if kind == "exact" else "near_duplicate_example"
        findings.append(_at(examples[later], "warning", code,
                            f"has {_KIND_TEXT[kind]} {locate(examples[earlier])}: {_KIND_ADVICE[kind]}"))
    return findings


def _most_common_system_prompt(examples: Sequence[Example]) -> str | None:
    prompts = Counter(p.strip() for e in examples if (p := e.system_prompt()) is not None)
    return prompts.most_common(1)[0][0] if prompts else None


def _system_prompts(examples: Sequence[Example], deploy_prompt: str | None) -> list[Finding]:
    with_prompt = [(e, p.strip()) for e in examples if (p := e.system_prompt()) is not None]
    if deploy_prompt is not None:
        deploy = deploy_prompt.strip()
        return [_at(e, "warning", "system_prompt_not_deploy_prompt",
                    f"its system prompt ({len(p)} characters) is not the deploy prompt ({len(deploy)} characters): "
                    "train with the exact prompt you will deploy with"
                    + (", not the longer one that generated the data." if len(p) > len(deploy) else "."))
                for e, p in with_prompt if p != deploy]
    counts = Counter(p for _, p in with_prompt)
    if len(counts) < 2:
        return []
    usual, uses = counts.most_common(1)[0]
    preview = usual if len(usual) <= 60 else usual[:57] + "..."
    return [_at(e, "warning", "inconsistent_system_prompt",
                f"its system prompt differs from the one {uses} of {len(with_prompt)} examples use ({preview!r}): "
                "train with one fixed system prompt, the one you will deploy with.")
            for e, p in with_prompt if p != usual]


def _size(examples: Sequence[Example]) -> list[Finding]:
    if not examples:
        return [Finding("error", "no_examples", "there are no examples to train on: add some.")]
    if len(examples) < MIN_EXAMPLES:
        return [Finding("warning", "too_few_examples",
                        f"only {len(examples)} examples: OpenAI refuses fewer than {MIN_EXAMPLES}, and clear gains "
                        "usually take 50-100; add more.")]
    return []


# --- answers listed in the input's order ---------------------------------------------------------------

_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")


def answer_items(answer: str) -> list[str]:
    """The items an answer lists: string leaves of JSON, else comma/semicolon/line-separated parts
    (text before a colon, such as a group's name, is left out)."""
    try:
        data = json.loads(answer)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, (list, dict)):
        items = list(_string_leaves(data))
    else:
        items = []
        for line in answer.splitlines():
            line = _LIST_MARKER.sub("", line)
            line = line.split(":", 1)[1] if ":" in line else line
            items += re.split(r"[,;]", line)
    cleaned = [item.strip().strip("\"'.").strip() for item in items]
    unique = dict.fromkeys(i for i in cleaned if i and len(i.split()) <= MAX_ITEM_WORDS)
    return list(unique)


def _string_leaves(data) -> Iterable[str]:
    values = data.values() if isinstance(data, dict) else data
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, (list, dict)):
            yield from _string_leaves(value)


def input_order_share(user_text: str, answer: str) -> float | None:
    """Share of item pairs the answer lists in the order the user message mentions them.

    None when the answer does not list at least MIN_LIST_ITEMS items found in the user message.
    A random order gives about 0.5; a list copied in input order gives 1.0.
    """
    text = user_text.casefold()
    positions = []
    for item in answer_items(answer):
        match = re.search(rf"(?<!\w){re.escape(item.casefold())}(?!\w)", text)
        if match:
            positions.append(match.start())
    if len(positions) < MIN_LIST_ITEMS:
        return None
    pairs = [(a, b) for i, a in enumerate(positions) for b in positions[i + 1:] if a != b]
    return sum(a < b for a, b in pairs) / len(pairs) if pairs else None


def _last_exchange(example: Example) -> tuple[str, str] | None:
    turns = example.conversation()
    for i in range(len(turns) - 1, 0, -1):
        if turns[i].role == "assistant" and turns[i - 1].role == "user":
            return turns[i - 1].content, turns[i].content
    return None


def _order_leak(examples: Sequence[Example]) -> list[Finding]:
    shares = []
    for example in examples:
        exchange = _last_exchange(example)
        share = input_order_share(*exchange) if exchange else None
        if share is not None:
            shares.append((example, share))
    ordered = [e for e, share in shares if share >= ORDERED_PAIRS_SHARE]
    if len(shares) < PATTERN_MIN_EXAMPLES or len(ordered) < ORDER_LEAK_SHARE * len(shares):
        return []
    return [_at(ordered[0], "warning", "answer_order_follows_input",
                f"in {len(ordered)} of {len(shares)} list-shaped answers the items come in the order the user "
                "message gives them: the model can learn that order instead of the task. Shuffle the items in "
                "each input (or the answer) unless order of mention is really what you want.")]


# --- words leaked into every input ---------------------------------------------------------------------


def _common_user_words(examples: Sequence[Example], reference: str) -> list[Finding]:
    """Words (nearly) every user message has that the deployed prompt does not explain: usually leaked by the
    script that built the data, and the fine-tune will rely on them."""
    texts = [normalize_text(e.user_text()).split() for e in examples]
    texts = [t for t in texts if t]
    if len(texts) < PATTERN_MIN_EXAMPLES:
        return []
    counts = Counter(word for words in texts for word in set(words))
    known = STOPWORDS | set(normalize_text(reference).split())
    common = {w for w, n in counts.items() if n >= COMMON_WORD_SHARE * len(texts) and w not in known}
    if not common:
        return []
    runs: Counter[tuple[str, ...]] = Counter()
    for words in texts:
        runs.update(set(_runs(words, common)))
    phrases, covered = [], set()
    for run, _ in sorted(runs.items(), key=lambda item: (-item[1], -len(item[0]), item[0])):
        if not set(run) <= covered:
            phrases.append(run)
            covered |= set(run)
    shown = ", ".join(f"'{' '.join(p)}'" for p in phrases)
    share = min(counts[w] for w in common)
    first = next(e for e in examples if normalize_text(e.user_text()))
    return [_at(first, "warning", "common_user_words",
                f"{shown} {'appears' if len(phrases) == 1 else 'appear'} in at least {share} of {len(texts)} user "
                "messages but not in the deploy prompt: if real users will not type it, it leaked from the script "
                "that built the data; remove it, or put it in the deploy prompt if every request really has it.")]


def _runs(words: list[str], common: set[str]) -> Iterable[tuple[str, ...]]:
    run: list[str] = []
    for word in [*words, ""]:
        if word in common:
            run.append(word)
        elif run:
            yield tuple(run)
            run = []
