"""Prompt sets: JSONL files of prompts to run through several models, with what each reply should be.

One JSON object a line:

    {"id": "q1", "messages": [{"role": "user", "content": "..."}], "expected": "...", "check": {"kind": "exact"}}
    {"prompt": "Q: Capital of France?\\nA:", "expected": "Paris", "check": {"kind": "contains"}}

Exactly one of `messages` or `prompt`. `id` is optional (the line number is used) and must be unique.
`expected` without `check` means an exact check for text, json_equal for a JSON value. Blank lines are
skipped. A file with any bad line is refused with every problem listed, unless `skip_bad=True`.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..core.errors import FileProblem, PlaygroundError
from ..core.messages import Message
from ..core.plural import plural
from .checks import Check, default_check, target_problem


class PromptRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    messages: list[Message] | None = Field(None, min_length=1)
    prompt: str | None = None
    expected: Any = None
    check: Check | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _consistent(self) -> "PromptRow":
        if (self.messages is None) == (self.prompt is None):
            raise ValueError('give exactly one of "messages" or "prompt"')
        if self.check is None:
            self.check = default_check(self.expected)
        elif self.check.needs_target and self.check.arg is None:
            if self.expected is None:
                raise ValueError(f'the {self.check.kind} check needs an "expected" value or a check "arg"')
            if problem := target_problem(self.check.kind, self.expected):
                raise ValueError(problem)
        return self

    def chat_messages(self) -> list[Message]:
        return list(self.messages) if self.messages is not None else [Message(role="user", content=self.prompt)]

    def preview(self, limit: int = 80) -> str:
        text = self.prompt if self.prompt is not None else next(
            (m.content for m in reversed(self.messages) if m.role == "user"), self.messages[-1].content)
        return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class PromptSet:
    rows: list[PromptRow]
    problems: list[FileProblem] = field(default_factory=list)


class BadPromptSet(PlaygroundError):
    """A prompt set with bad lines; `problems` names each line and what is wrong with it."""

    def __init__(self, source: str, problems: list[FileProblem]):
        self.source, self.problems = source, problems
        shown = "\n".join(f"- {p}" for p in problems[:10])
        more = f"\n- ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        super().__init__(f"{source}: {plural(len(problems), 'bad line')}; nothing was run. Fix them, or skip "
                         f"bad lines to run the rest.\n{shown}{more}")


def iter_prompt_rows(lines: Iterable[str], source: str = "prompt set") -> Iterator[PromptRow | FileProblem]:
    """Each non-blank line as a row or as the problem with it, read one line at a time."""
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = _parse_line(line, number, source)
        if isinstance(item, PromptRow):
            if item.id in seen:
                item = FileProblem(source, f"the id '{item.id}' is already used on line {seen[item.id]}.",
                                   line=number, field="id")
            else:
                seen[item.id] = number
        yield item


def _parse_line(line: str, number: int, source: str) -> PromptRow | FileProblem:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        return FileProblem(source, f"is not valid JSON: {e.msg} at column {e.colno}.", line=number)
    if not isinstance(data, dict):
        return FileProblem(source, "must be a JSON object { ... }.", line=number)
    data.setdefault("id", str(number))
    try:
        return PromptRow.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        problem = ("unknown field: remove it or check its spelling." if err["type"] == "extra_forbidden"
                   else err["msg"].removeprefix("Value error, ") + ".")
        return FileProblem(source, problem, line=number, field=where)


def parse_prompt_set(lines: Iterable[str], source: str = "prompt set", skip_bad: bool = False) -> PromptSet:
    rows: list[PromptRow] = []
    problems: list[FileProblem] = []
    for item in iter_prompt_rows(lines, source):
        if isinstance(item, PromptRow):
            rows.append(item)
        else:
            problems.append(item)
    if problems and not skip_bad:
        raise BadPromptSet(source, problems)
    return PromptSet(rows, problems)


def load_prompt_set(path: Path, skip_bad: bool = False) -> PromptSet:
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig") as lines:
            return parse_prompt_set(lines, str(path), skip_bad)
    except UnicodeDecodeError as e:
        raise FileProblem(path, f"is not valid UTF-8 (byte {e.start}); save it as UTF-8.") from None
    except OSError as e:
        raise FileProblem(path, f"cannot be read: {e.strerror}.") from None
