"""Check a dataset before it costs a training run.

The format checks are OpenAI's data-prep cookbook's; the rest catch the dataset bugs that made fine-tunes look
good or bad for the wrong reason: copies of an example, the same example in train and test, words leaked
into every input, answers listed in the order of the input, a training system prompt that is not the one deployed.
Errors block an export; warnings are for a person to judge.
"""

from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ...core.plural import plural
from ...core.tokens import model_label
from ..examples import DEFAULT_MODEL, Example
from ..formats import ParsedLine, locate
from ..formats.readers import parse_lines, read_lines
from ..stats import ConversationTokens, DatasetStats, context_limit, stats_from_counts
from .answer_order import ORDERED_PAIRS_SHARE, input_order_share, last_exchange
from .duplicates import duplicate_links, normalize_text, word_bytes
from .fingerprints import DuplicateIndex, exact_hash, key_hash
from .user_words import UserWordCounts, common_runs

MIN_EXAMPLES = 10  # OpenAI refuses smaller training files
PATTERN_MIN_EXAMPLES = 5  # below this, "most examples" means too little to call a pattern
COMMON_WORD_SHARE = 0.9
ORDER_LEAK_SHARE = 0.8

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
                  format: str | None = None, expected_phrases: Sequence[str] = (),
                  context: int | None = None) -> list[Finding]:
    """Every finding of a JSONL file, each at a line; dataset-wide ones sit at the last line read."""
    return check_file(path, model, deploy_prompt, format, expected_phrases, context=context).findings


@dataclass(frozen=True)
class FileCheck:
    findings: list[Finding]
    stats: DatasetStats  # token counts came with the checks: no second pass to count them


def check_file(path: Path, model: str = DEFAULT_MODEL, deploy_prompt: str | None = None, format: str | None = None,
               expected_phrases: Sequence[str] = (), prices: Mapping[str, float] | None = None,
               context: int | None = None) -> FileCheck:
    """Validate a file and count its tokens in one streaming pass (plus re-reading the few lines a check needs)."""
    checker = Checker(model, deploy_prompt, expected_phrases, context)
    for _ in checker.read(parse_lines(path, format)):
        pass
    return FileCheck(checker.finish(checker.file_fetch(path, format), at_lines=True), checker.stats(prices=prices))


def validate_examples(examples: Iterable[Example], model: str = DEFAULT_MODEL, deploy_prompt: str | None = None,
                      expected_phrases: Sequence[str] = (), context: int | None = None) -> list[Finding]:
    """Findings for examples that will be trained on: each names the example's id (or, unsaved, its file line)."""
    checker = Checker(model, deploy_prompt, expected_phrases, context)
    included = []
    for example in examples:
        if not example.excluded:
            checker.add(example)
            included.append(example)
    return checker.finish(lambda indices: ((i, included[i]) for i in sorted(indices)))


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
    return findings + _greeting_first(example)


def _greeting_first(example: Example) -> list[Finding]:
    """An assistant turn before any user turn (a kept greeting) teaches the model to open the conversation."""
    first = next((m for m in example.messages if m.role != "system"), None)
    if first is None or first.role != "assistant" or not any(m.role == "user" for m in example.messages):
        return []
    return [_at(example, "warning", "assistant_speaks_first",
                "starts with an assistant turn before any user turn (the persona's greeting, kept by the \"Keep the "
                "greeting\" option of Add to dataset): the model learns to speak first. Delete that turn, or add "
                "again with \"Keep the greeting\" unticked.")]


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
NO_PROMPT = 0


class Checker:
    """Validation of examples seen one at a time: a file or a dataset of any size streams through it.

    Per-example checks run at once. The dataset-wide ones keep small per-example fingerprints (token count,
    hashed keys, a few rare words; see fingerprints.py) and word counts, never the examples; at the end, the
    few examples a check must look at again are fetched back (from the list, the store or the file).
    """

    def __init__(self, model: str = DEFAULT_MODEL, deploy_prompt: str | None = None, expected_phrases: Sequence[str] = (),
                 context: int | None = None):
        self.model, self.deploy_prompt, self.expected_phrases = model, deploy_prompt, tuple(expected_phrases)
        self.deploy = deploy_prompt.strip() if deploy_prompt is not None else None
        self.context = context
        self.limit = context_limit(model, context)
        self.per_example: list[Finding] = []
        self.prompt_findings: list[Finding] = []
        self.line_problems: list[Finding] = []
        self.last_line = 1
        self.ids, self.lines = array("q"), array("q")  # -1: none
        self.tokens = array("I")
        self.token_counter = ConversationTokens(model)
        self.user_words = UserWordCounts()
        self.duplicates = DuplicateIndex(user_words=self.user_words.add)
        self.prompts = array("q")
        self.prompt_counts: Counter[int] = Counter()
        self.prompt_texts: dict[int, str] = {}
        self.order_shares = 0
        self.ordered: list[int] = []  # the first ordered example, and how many there were
        self.ordered_count = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def read(self, parsed_lines: Iterable[ParsedLine]) -> Iterator[ParsedLine]:
        """Check each parsed line of a file as it passes through (so the caller can write it out meanwhile)."""
        for parsed in parsed_lines:
            self.last_line = parsed.line
            if parsed.problems:
                self.line_problems += [Finding("error", p.code, p.message, line=p.line) for p in parsed.problems]
            if parsed.example is not None:
                self.add(parsed.example)
            yield parsed

    def add(self, example: Example) -> None:
        i = len(self.tokens)
        self.ids.append(-1 if example.id is None else example.id)
        self.lines.append(-1 if example.source.line is None else example.source.line)
        turns = example.conversation()
        tokens = self.token_counter.count(turns)
        self.tokens.append(tokens)
        self.per_example += _empty_content(example) + _missing_roles(example) + self._too_long(example, tokens)
        # Hashed a batch at a time for the user key, the word set and the user's words all at once.
        replies = " ".join(m.content for m in turns if m.role == "assistant")
        self.duplicates.add_keys(exact_hash(example), word_bytes(example.user_text()), word_bytes(replies))
        self._system_prompt(i, example)
        self._order(i, example)

    def _too_long(self, example: Example, tokens: int) -> list[Finding]:
        if tokens <= self.limit:
            return []
        return [_at(example, "warning", "over_context_limit",
                    f"has {tokens:,} tokens, over the {self.limit:,}-token training context of {model_label(self.model)}: "
                    "it will be cut from the end; shorten or split it.")]

    def _system_prompt(self, i: int, example: Example) -> None:
        prompt = example.system_prompt()
        if prompt is None:
            self.prompts.append(NO_PROMPT)
            return
        prompt = prompt.strip()
        if self.deploy is not None:
            self.prompts.append(NO_PROMPT)
            if prompt != self.deploy:
                self.prompt_findings.append(_at(
                    example, "warning", "system_prompt_not_deploy_prompt",
                    f"its system prompt ({len(prompt)} characters) is not the deploy prompt ({len(self.deploy)} "
                    "characters): train with the exact prompt you will deploy with"
                    + (", not the longer one that generated the data." if len(prompt) > len(self.deploy) else ".")))
            return
        key = key_hash(prompt)
        self.prompts.append(key)
        self.prompt_counts[key] += 1
        self.prompt_texts.setdefault(key, prompt)

    def _order(self, i: int, example: Example) -> None:
        exchange = last_exchange(example)
        share = input_order_share(*exchange) if exchange else None
        if share is None:
            return
        self.order_shares += 1
        if share >= ORDERED_PAIRS_SHARE:
            self.ordered_count += 1
            if not self.ordered:
                self.ordered.append(i)

    # --- at the end ----------------------------------------------------------------------------------------

    def where(self, i: int) -> dict:
        if self.ids[i] >= 0:
            return {"example_id": self.ids[i]}
        return {"line": self.lines[i]} if self.lines[i] >= 0 else {}

    def locate(self, i: int) -> str:
        if self.ids[i] >= 0:
            return f"example {self.ids[i]}"
        return f"line {self.lines[i]}" if self.lines[i] >= 0 else "example"

    def finish(self, fetch: Callable[[set[int]], Iterable[tuple[int, Example]]], at_lines: bool = False) -> list[Finding]:
        """Every finding; `fetch(indices)` gives back (index, example) for the examples a check looks at again.

        `at_lines` (a file): every finding at a line, the dataset-wide ones at the last line read.
        """
        findings = self.per_example + self._duplicate_findings(fetch) + self.prompt_findings
        findings += self._inconsistent_prompts() + self._order_leak() + self._common_user_words(fetch) + self._size()
        if at_lines:
            findings = [f if f.line is not None else replace(f, line=self.last_line) for f in findings]
            return sorted(self.line_problems + findings, key=lambda f: f.line)
        # By place in the file or id; dataset-wide findings last.
        return sorted(findings, key=lambda f: (f.line is None and f.example_id is None, f.line or f.example_id or 0))

    def file_fetch(self, path: Path, format: str | None = None) -> Callable[[set[int]], Iterator[tuple[int, Example]]]:
        """Fetch examples back from the file they were read from, parsing only their lines."""
        def fetch(indices: set[int]) -> Iterator[tuple[int, Example]]:
            wanted = {self.lines[i]: i for i in indices}
            for example in read_lines(path, set(wanted), format):
                yield wanted[example.source.line], example
        return fetch

    def stats(self, excluded: int = 0, epochs: int | None = None, prices: Mapping[str, float] | None = None) -> DatasetStats:
        return stats_from_counts(self.tokens, self.model, excluded, epochs, prices, self.context)

    def _duplicate_findings(self, fetch) -> list[Finding]:
        """One warning per later copy, naming its earliest (and closest) original."""
        best: dict[int, tuple] = {}
        for link in self.duplicates.links(fetch):
            candidate = (_KIND_RANK[link.kind], link.earlier, link.kind)
            best[link.later] = min(best.get(link.later, candidate), candidate)
        findings = []
        for later, (_, earlier, kind) in sorted(best.items()):
            code = "duplicate_example" if kind == "exact" else "near_duplicate_example"
            findings.append(Finding("warning", code, f"has {_KIND_TEXT[kind]} {self.locate(earlier)}: "
                                                     f"{_KIND_ADVICE[kind]}", **self.where(later)))
        return findings

    def _usual_prompt(self) -> str | None:
        return self.prompt_texts[self.prompt_counts.most_common(1)[0][0]] if self.prompt_counts else None

    def _inconsistent_prompts(self) -> list[Finding]:
        if self.deploy is not None or len(self.prompt_counts) < 2:
            return []
        usual, uses = self.prompt_counts.most_common(1)[0]
        text = self.prompt_texts[usual]
        preview = text if len(text) <= 60 else text[:57] + "..."
        with_prompt = sum(self.prompt_counts.values())
        return [Finding("warning", "inconsistent_system_prompt",
                        f"its system prompt differs from the one {uses} of {plural(with_prompt, 'example')} use ({preview!r}): "
                        "train with one fixed system prompt, the one you will deploy with.", **self.where(i))
                for i, key in enumerate(self.prompts) if key not in (NO_PROMPT, usual)]

    def _order_leak(self) -> list[Finding]:
        shares, ordered = self.order_shares, self.ordered_count
        if shares < PATTERN_MIN_EXAMPLES or ordered < ORDER_LEAK_SHARE * shares:
            return []
        return [Finding("warning", "answer_order_follows_input",
                        f"in {ordered} of {shares} list-shaped answers the items come in the order the user "
                        "message gives them: the model can learn that order instead of the task. Shuffle the items in "
                        "each input (or the answer) unless order of mention is really what you want.",
                        **self.where(self.ordered[0]))]

    def _common_user_words(self, fetch) -> list[Finding]:
        """Words (nearly) every user message has that the deployed prompt does not explain: usually leaked by the
        script that built the data, and the fine-tune will rely on them."""
        self.duplicates.flush()
        texts = self.user_words.texts
        if texts < PATTERN_MIN_EXAMPLES:
            return []
        reference = self.deploy_prompt if self.deploy_prompt is not None else self._usual_prompt()
        known = STOPWORDS | set(normalize_text(" ".join([reference or "", *self.expected_phrases])).split())
        common = self.user_words.common(COMMON_WORD_SHARE, known)
        if not common:
            return []
        runs = common_runs((normalize_text(example.user_text()).split()  # rare: only a leaky dataset gets here
                            for _, example in fetch(set(range(len(self))))), set(common))
        phrases: list[tuple[str, ...]] = []
        covered: set[str] = set()
        for run, _ in sorted(runs.items(), key=lambda item: (-item[1], -len(item[0]), item[0])):
            if not set(run) <= covered:
                phrases.append(run)
                covered |= set(run)
        shown = ", ".join(f"'{' '.join(p)}'" for p in phrases)
        return [Finding("warning", "common_user_words",
                        f"{shown} {'appears' if len(phrases) == 1 else 'appear'} in at least {min(common.values())} of "
                        f"{texts} user messages but not in the deploy prompt: if real users will not type it, it leaked "
                        "from the script that built the data; remove it, or put it in the deploy prompt if every "
                        "request really has it.", **self.where(self.user_words.first_text))]

    def _size(self) -> list[Finding]:
        n = len(self)
        if not n:
            return [Finding("error", "no_examples", "there are no examples to train on: add some.")]
        if n < MIN_EXAMPLES:
            return [Finding("warning", "too_few_examples",
                            f"only {plural(n, 'example')}: OpenAI refuses fewer than {MIN_EXAMPLES}, and clear gains "
                            "usually take 50-100; add more.")]
        return []
