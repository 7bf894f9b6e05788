"""Training data from facts: chunk text files by tokens, ask a generation template for question/answer pairs per chunk,
parse the JSONL the model writes (broken lines skipped and reported), and add the chosen pairs to a dataset.

The template gets each chunk as {{facts}} and the number of pairs as {{n}}; it should also ask for questions the
facts do not answer, with "I don't know" answers, so the fine-tune learns to say so instead of inventing.
"""

import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..chat.ask import Request
from ..chat.services import Services
from ..core.errors import FileProblem, PlaygroundError
from ..core.messages import Message
from ..core.pricing import cost_usd
from ..core.prompts import Template, fill_messages, read_text, render_prompt
from ..core.store import Exchange, new_id
from ..core.tokens import count_messages, count_text, encoding, encoding_name
from ..datasets.examples import Example, Source
from ..datasets.store import AddReport, DatasetNotFound, add_new_examples, create_dataset, get_dataset
from ..providers import ProviderError, Stream
from .render import values_for

FACTS = "facts"
COUNT = "n"
TEXT_SUFFIXES = (".txt", ".md")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
LIST_MARKER = re.compile(r"^(?:\d{1,3}[.)]|[-*\u2022])\s*")
FENCE = re.compile(r"^```")
# Answers that decline: the adversarial examples that teach a model to admit what the facts do not say.
DECLINES = re.compile(r"\b(i (?:do not|don't|dont) know|i (?:do not|don't) have (?:that|this|the|any)|"
                      r"not (?:in|covered by|mentioned in|given in) the (?:facts|text)|the facts do not say)\b",
                      re.IGNORECASE)
GENERATED_TAG = "generated"
DECLINE_TAG = "i-dont-know"


# --- chunks --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    file: str  # relative to the folder, for display
    path: str  # absolute, for provenance
    index: int  # 1-based, within its file
    line: int  # the file line it starts on
    text: str
    tokens: int

    @property
    def label(self) -> str:
        return f"{self.file}#{self.index}"


@dataclass(frozen=True)
class _Unit:
    line: int
    text: str
    new_line: bool  # starts a line of the file (joined with a newline), else continues one (a space)


def chunk_text(text: str, size: int, overlap: int, model: str) -> list[tuple[int, str]]:
    """(start line, text) chunks of at most `size` tokens, each starting with up to `overlap` tokens of the one before.

    Cuts fall between lines, else between sentences, else between words, so no fact is split mid-word."""
    if size < 8:
        raise PlaygroundError(f"Chunk size {size} is too small: use at least 8 tokens (a few hundred is typical).")
    if not 0 <= overlap < size:
        raise PlaygroundError(f"Overlap {overlap} must be at least 0 and less than the chunk size {size}.")
    chunks: list[list[_Unit]] = []
    current: list[_Unit] = []
    fresh = False  # whether `current` holds anything not carried over from the chunk before
    for unit in _units(text, size, model):
        if current and _count(current + [unit], model) > size:
            if fresh:
                chunks.append(current)
            current = _tail(current, overlap, model)
            while current and _count(current + [unit], model) > size:
                current = current[1:]
            fresh = False
        current.append(unit)
        fresh = True
    if fresh:
        chunks.append(current)
    return [(units[0].line, _join(units)) for units in chunks]


def _units(text: str, size: int, model: str) -> list[_Unit]:
    units = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        pieces = [line] if count_text(line, model) <= size else _split(line, size, model)
        units += [_Unit(number, piece, i == 0) for i, piece in enumerate(pieces)]
    return units


def _split(line: str, size: int, model: str) -> list[str]:
    """A line longer than a chunk: its sentences, else its words, packed up to `size` tokens each."""
    pieces: list[str] = []
    for sentence in SENTENCE_END.split(line):
        if count_text(sentence, model) <= size:
            pieces.append(sentence)
            continue
        packed = ""
        for word in sentence.split():
            if count_text(word, model) > size:  # one "word" longer than a chunk (a URL, a table row): cut by tokens
                pieces += [packed] if packed else []
                pieces += _cut_by_tokens(word, size, model)
                packed = ""
                continue
            candidate = f"{packed} {word}" if packed else word
            if packed and count_text(candidate, model) > size:
                pieces.append(packed)
                candidate = word
            packed = candidate
        if packed:
            pieces.append(packed)
    return pieces


def _cut_by_tokens(text: str, size: int, model: str) -> list[str]:
    enc = encoding(encoding_name(model)[0])
    tokens = enc.encode(text, disallowed_special=())
    return [enc.decode(tokens[i:i + size]) for i in range(0, len(tokens), size)]


def _join(units: list[_Unit]) -> str:
    return "".join(("\n" if u.new_line else " ") + u.text if i else u.text for i, u in enumerate(units))


def _count(units: list[_Unit], model: str) -> int:
    return count_text(_join(units), model)


def _tail(units: list[_Unit], overlap: int, model: str) -> list[_Unit]:
    tail: list[_Unit] = []
    for unit in reversed(units):
        if _count([unit, *tail], model) > overlap:
            break
        tail.insert(0, unit)
    return tail


def chunk_folder(folder: Path, size: int, overlap: int, model: str) -> tuple[list[Chunk], list[str]]:
    """Chunks of every .txt and .md file in the folder (and below), and the files that could not be used."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise PlaygroundError(f"{folder} is not a folder: give the folder that holds your .txt or .md files.")
    chunks, problems = [], []
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not paths:
        raise PlaygroundError(f"{folder} has no .txt or .md files.")
    for path in paths:
        name = str(path.relative_to(folder))
        try:
            text = read_text(path)
        except FileProblem as e:
            problems.append(f"{name}: skipped, {e.problem}")
            continue
        pieces = chunk_text(text, size, overlap, model)
        if not pieces:
            problems.append(f"{name}: skipped, it is empty.")
        chunks += [Chunk(name, str(path.resolve()), i, line, piece, count_text(piece, model))
                   for i, (line, piece) in enumerate(pieces, 1)]
    return chunks, problems


# --- parsing the model's JSONL -------------------------------------------------------------------------


@dataclass(frozen=True)
class QA:
    prompt: str
    completion: str

    @property
    def declines(self) -> bool:
        """An "I don't know" answer, for a question the facts do not answer."""
        return bool(DECLINES.search(self.completion))


@dataclass(frozen=True)
class SkippedLine:
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return f"line {self.line}: {self.reason}: {shown}"


@dataclass(frozen=True)
class ParsedPairs:
    pairs: list[QA]
    skipped: list[SkippedLine]


def parse_pairs(output: str) -> ParsedPairs:
    """Question/answer pairs from a model's JSONL reply; every line that is not one is skipped and reported.

    Each line is {"prompt", "completion"} (or "question"/"answer", or a chat {"messages": [...]}). Code fences
    and blank lines are passed over; a list marker ("1.", "-") or a trailing comma before or after an object is
    tolerated; anything else that is not a complete JSON object is reported with its line number.
    """
    pairs, skipped = [], []
    for number, raw in enumerate(output.splitlines(), 1):
        line = raw.strip()
        if not line or FENCE.match(line):
            continue
        try:
            pairs += _pairs_in(LIST_MARKER.sub("", line).rstrip(","))
        except ValueError as e:
            skipped.append(SkippedLine(number, line, str(e)))
    return ParsedPairs(pairs, skipped)


def _pairs_in(line: str) -> list[QA]:
    if not line.startswith(("{", "[")):
        raise ValueError("not a JSON object")
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"broken JSON ({e.msg} at column {e.colno})") from None
    items = value if isinstance(value, list) else [value]
    return [_pair(item) for item in items]


def _pair(item) -> QA:
    if not isinstance(item, dict):
        raise ValueError("not a JSON object")
    if isinstance(item.get("messages"), list):
        turns = [m for m in item["messages"] if isinstance(m, dict)]
        prompt = next((m.get("content") for m in turns if m.get("role") == "user"), None)
        completion = next((m.get("content") for m in reversed(turns) if m.get("role") == "assistant"), None)
    else:
        prompt = item.get("prompt", item.get("question"))
        completion = item.get("completion", item.get("answer"))
    missing = [name for name, value in (("prompt", prompt), ("completion", completion))
               if not isinstance(value, str) or not value.strip()]
    if missing:
        raise ValueError(f"no {' and no '.join(missing)} text")
    return QA(prompt.strip(), completion.strip())


# --- running the template ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    template: str  # the template's key, e.g. templates/generate_qa.json
    version: int  # its saved version, see template_store.snapshot
    model: str

    @property
    def tag(self) -> str:
        return f"template:{self.template}@v{self.version}"


@dataclass(frozen=True)
class Pair:
    qa: QA
    chunk: Chunk
    exchange_id: int | None


@dataclass
class ChunkResult:
    chunk: Chunk
    reply: str = ""
    exchange_id: int | None = None
    error: str | None = None
    cut_off: bool = False
    skipped: list[SkippedLine] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    cost_usd: float | None = None


@dataclass
class Generation:
    provenance: Provenance
    results: list[ChunkResult]

    @property
    def pairs(self) -> list[Pair]:
        return [p for r in self.results for p in r.pairs]

    @property
    def cost_usd(self) -> float | None:
        costs = [r.cost_usd for r in self.results]
        return None if any(c is None for c in costs) else sum(costs)

    def problems(self) -> list[str]:
        found = []
        for r in self.results:
            if r.error:
                found.append(f"{r.chunk.label}: {r.error}")
            if r.cut_off:
                found.append(f"{r.chunk.label}: the reply reached max_tokens and was cut off; raise max_tokens "
                             "in the template or ask for fewer pairs.")
            found += [f"{r.chunk.label}, reply {s}" for s in r.skipped]
        return found


def generate(services: Services, template: Template, chunks: list[Chunk], model_ref: str, *, template_key: str,
             template_version: int, pairs_per_chunk: int = 5, concurrency: int = 4,
             values: dict[str, str] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> Generation:
    """Run the template (saved as `template_key` version `template_version`) once per chunk, at most `concurrency`
    at a time, and parse each reply.

    A chunk whose call fails is reported and the others go on; every call is logged as an exchange.
    Unfilled variables and an unknown model are raised before anything is sent.
    """
    if FACTS not in template.variable_names():
        raise PlaygroundError("A generation template puts each chunk where {{facts}} is: add {{facts}} to a message.")
    if not chunks:
        raise PlaygroundError("There are no chunks to generate from: load a folder of .txt or .md files first.")
    if not 1 <= concurrency <= 32:
        raise PlaygroundError(f"Concurrency must be 1 to 32 parallel calls, not {concurrency}.")
    provider, model = services.registry.resolve(model_ref)
    as_prompt = provider.uses_completions(model, template.mode == "completion")
    base = values_for(template, values)
    requests = [_request(template, {**base, FACTS: c.text, COUNT: str(pairs_per_chunk)}, as_prompt) for c in chunks]
    provenance = Provenance(template_key, template_version, model)
    run_id = new_id()
    results: list[ChunkResult | None] = [None] * len(chunks)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="generate") as pool:
        futures = {pool.submit(_ask, services, provider, model, template, request, run_id, provenance, i, chunk): i
                   for i, (chunk, request) in enumerate(zip(chunks, requests))}
        for done, future in enumerate(as_completed(futures), 1):
            results[futures[future]] = future.result()
            if on_progress:
                on_progress(done, len(chunks))
    return Generation(provenance, results)


def _request(template: Template, values: dict[str, str], as_prompt: bool) -> Request:
    messages = fill_messages(template.messages, values)
    if as_prompt:
        return Request("completion", messages, render_prompt(messages, template.prompt_format))
    return Request("chat", messages)


def _ask(services, provider, model: str, template: Template, request: Request, run_id: str, provenance: Provenance,
         index: int, chunk: Chunk) -> ChunkResult:
    result = ChunkResult(chunk)
    params = template.params
    started = time.perf_counter()
    stream: Stream | None = None
    try:
        if request.mode == "completion":
            stream = provider.stream_completion(model, request.prompt, params)
        else:
            stream = provider.stream_chat(model, request.messages, params)
        for delta in stream:  # kept as it grows: the lines before a broken-off stream are still usable
            result.reply += delta
    except ProviderError as e:
        result.error = str(e)
    usage = stream.usage if stream else None
    prompt_tokens = usage.prompt_tokens if usage else (
        count_text(request.prompt, model) if request.prompt is not None else count_messages(request.messages, model))
    completion_tokens = usage.completion_tokens if usage else count_text(result.reply, model)
    result.cost_usd = cost_usd(model, prompt_tokens, completion_tokens, services.prices()) if stream else 0.0
    result.cut_off = bool(stream and stream.finish_reason == "length")
    result.exchange_id = services.store.log_exchange(Exchange(
        conversation_id=run_id, turn=index, persona=provenance.tag, model=model, provider=provider.name,
        mode=request.mode, request=request.as_logged(model, params), reply=result.reply,
        finish_reason=stream.finish_reason if stream else None, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, tokens_counted=usage is None, cost_usd=result.cost_usd,
        duration_ms=(time.perf_counter() - started) * 1000, error=result.error, incomplete=result.error is not None,
    ))
    parsed = parse_pairs(result.reply)
    result.skipped = parsed.skipped
    result.pairs = [Pair(qa, chunk, result.exchange_id) for qa in parsed.pairs]
    return result


# --- into a dataset ------------------------------------------------------------------------------------


def to_example(pair: Pair, provenance: Provenance, system_prompt: str = "") -> Example:
    """A chat example (system prompt, question, answer) that remembers the template version, chunk and model."""
    messages = [Message(role="system", content=system_prompt.strip())] if system_prompt.strip() else []
    messages += [Message(role="user", content=pair.qa.prompt), Message(role="assistant", content=pair.qa.completion)]
    tags = [GENERATED_TAG, provenance.tag, f"chunk:{pair.chunk.label}"] + ([DECLINE_TAG] if pair.qa.declines else [])
    source = Source(exchange_ids=[pair.exchange_id] if pair.exchange_id is not None else [], model=provenance.model,
                    file=pair.chunk.path, line=pair.chunk.line)
    return Example(messages=[m.model_dump() for m in messages], tags=tags, source=source)


def add_to_dataset(store, name: str, pairs: list[Pair], provenance: Provenance, system_prompt: str = "",
                   description: str = "") -> AddReport:
    """Add the pairs as examples, creating the dataset if there is none by that name; pairs the dataset already
    holds are left out and counted."""
    if not pairs:
        raise PlaygroundError("No pairs are selected: tick the ones to add.")
    examples = [to_example(p, provenance, system_prompt) for p in pairs]  # all checked before anything is written
    try:
        get_dataset(store, name.strip())
    except DatasetNotFound:
        create_dataset(store, name, description or f"Generated with {provenance.template} v{provenance.version}.")
    return add_new_examples(store, name.strip(), examples)
