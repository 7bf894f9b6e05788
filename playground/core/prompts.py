"""Prompt templates: a JSON file of top-level sampling params and a `messages` list with {{variables}}.

A persona is a template with persona fields on top (see personas.py), so Chat and Templates share one model.
"""

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import FileProblem, MissingVariables
from .messages import Message
from .params import PARAM_NAMES, SamplingParams

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# A "{{" with no "}}" before the next "{{" or the end: a variable whose closing braces were forgotten.
UNCLOSED = re.compile(r"\{\{(?:(?!\}\}|\{\{).)*(?:\{\{|\Z)", re.DOTALL)
# Personas, templates and providers files are a few KB; anything far larger is the wrong file, and reading it
# whole (a multi-GB file, say) would stall or kill the app at startup.
FILE_SIZE_LIMIT = 4 * 1024 * 1024


class PromptFormat(BaseModel):
    """How a conversation becomes prompt text for a base (completion) model."""

    model_config = ConfigDict(extra="forbid")

    user_prefix: str = "Q: "
    assistant_prefix: str = "A:"
    separator: str = "\n"


class Template(SamplingParams):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Default model, e.g. gpt-4o-mini or ollama:llama3.2.")
    mode: Literal["chat", "completion"] = "chat"
    prompt_format: PromptFormat = Field(default_factory=PromptFormat)
    messages: list[Message] = Field(default_factory=list)
    variables: dict[str, str] = Field(default_factory=dict, description="Default values for {{variables}}.")

    @property
    def params(self) -> SamplingParams:
        return SamplingParams(**{name: getattr(self, name) for name in PARAM_NAMES})

    @property
    def system_prompt(self) -> str:
        return self.messages[0].content if self.messages and self.messages[0].role == "system" else ""

    @property
    def seed_messages(self) -> list[Message]:
        """The few-shot turns after the system prompt."""
        has_system = bool(self.messages) and self.messages[0].role == "system"
        return self.messages[1:] if has_system else list(self.messages)

    def variable_names(self) -> list[str]:
        return variables_in(*(m.content for m in self.messages))


def variables_in(*texts: str) -> list[str]:
    """Variable names in order of first appearance."""
    seen: dict[str, None] = {}
    for text in texts:
        for match in VARIABLE.finditer(text):
            seen.setdefault(match.group(1), None)
    return list(seen)


def fill(text: str, values: dict[str, str]) -> str:
    """Substitute in one pass, so a value that itself holds {{...}} is inserted literally."""
    missing = [n for n in variables_in(text) if not str(values.get(n, "")).strip()]
    if missing:
        raise MissingVariables(missing)
    return VARIABLE.sub(lambda m: str(values[m.group(1)]), text)


def fill_messages(messages: list[Message], values: dict[str, str]) -> list[Message]:
    missing = [n for n in variables_in(*(m.content for m in messages)) if not str(values.get(n, "")).strip()]
    if missing:
        raise MissingVariables(missing)
    return [Message(role=m.role, content=fill(m.content, values)) for m in messages]


def render_prompt(messages: list[Message], fmt: PromptFormat) -> str:
    """Render a conversation as prompt text that ends where the model should continue."""
    parts: list[str] = []
    for m in messages:
        if m.role == "system":
            parts.append(m.content + fmt.separator)
        elif m.role == "user":
            parts.append(fmt.user_prefix + m.content + fmt.separator)
        else:
            parts.append(fmt.assistant_prefix + _spaced(fmt.assistant_prefix, m.content) + fmt.separator)
    return "".join(parts) + fmt.assistant_prefix


def _spaced(prefix: str, content: str) -> str:
    # "A:" + "Paris" would train/run as "A:Paris"; models continue "A:" with a leading space.
    return " " + content if prefix and not prefix.endswith((" ", "\n")) else content


def parse_model_file(path: Path, cls: type[BaseModel]):
    """Parse a JSON file into `cls`, turning every failure into a FileProblem naming file, line and field."""
    return parse_model_text(read_text(path), path, cls)


def read_text(path: Path, limit: int = FILE_SIZE_LIMIT) -> str:
    """The file's text; a file over `limit` bytes is refused before it is read."""
    try:
        with Path(path).open("rb") as f:
            raw = f.read(limit + 1)
        if len(raw) > limit:
            raise FileProblem(path, f"is larger than {_size(limit)}, too large for this kind of file: check that it "
                              "is the right file (these are usually a few KB), or make it smaller.")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FileProblem(path, f"is not valid UTF-8 (byte {e.start}); save it as UTF-8.") from None
    except OSError as e:
        raise FileProblem(path, f"cannot be read: {e.strerror}.") from None


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def loads(text: str):
    """json.loads, with deep nesting (thousands of [ or {) reported as a ValueError, not a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise NestingTooDeep() from None


class NestingTooDeep(ValueError):
    def __init__(self):
        super().__init__("nests [ ] or { } too deeply to be read: check that it is the right file and that its "
                         "brackets are balanced.")


def parse_model_text(text: str, path, cls: type[BaseModel]):
    """Parse JSON text (from a file, or an editor showing one) into `cls`; errors name `path`, line and field."""
    try:
        data = loads(text)
    except json.JSONDecodeError as e:
        raise FileProblem(path, f"is not valid JSON: {e.msg} at column {e.colno}.", line=e.lineno) from None
    except NestingTooDeep as e:
        raise FileProblem(path, str(e)) from None
    if not isinstance(data, dict):
        raise FileProblem(path, "must hold a JSON object { ... } at the top level.", line=1)
    try:
        parsed = cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        problem = ("unknown field: remove it or check its spelling." if err["type"] == "extra_forbidden"
                   else err["msg"].removeprefix("Value error, ") + ".")
        raise FileProblem(path, problem, line=_line_of(text, err["loc"]), field=field) from None
    except RecursionError:  # nesting json.loads could read but validation cannot walk
        raise FileProblem(path, NestingTooDeep().args[0]) from None
    if isinstance(parsed, Template):
        _check_variables(parsed, text, path)
    return parsed


def _check_variables(template: Template, text: str, path) -> None:
    """An unclosed {{ would be sent to the model as is, silently; name its message and line instead."""
    for i, message in enumerate(template.messages):
        if found := UNCLOSED.search(message.content):
            opened = found.group(0).removesuffix("{{")[:40].rstrip()
            loc = ("messages", i, "content")
            raise FileProblem(path, f"'{opened}' opens a variable that is never closed: write it as "
                              f"{{{{name}}}} or remove the braces.", line=_line_of(text, loc),
                              field=".".join(map(str, loc)))


def _line_of(text: str, loc: tuple) -> int:
    """The line of the value at `loc` in valid JSON text, or of its deepest part that exists (a missing field's object).

    Walking the path matters: searching for the key alone finds the first message's "role", not the third's.
    """
    decoder = json.JSONDecoder()
    line_at = value_at = _skip_space(text, 0)
    for part in loc:
        found = _member(text, value_at, part, decoder)
        if found is None:
            break
        line_at, value_at = found
    return text.count("\n", 0, line_at) + 1


def _member(text: str, at: int, part, decoder: json.JSONDecoder) -> tuple[int, int] | None:
    """(start of the entry, start of its value) for key or index `part` of the object or array at `at`."""
    opener = text[at]
    if opener not in "{[":
        return None
    i, index = at + 1, 0
    while True:
        start = i = _skip_space(text, i)
        if text[i] in "}]":
            return None
        key = index
        if opener == "{":
            key, i = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]  # untyped in typeshed
            i = _skip_space(text, _skip_space(text, i) + 1)  # past the colon
        if key == part:
            return start, i
        _, i = decoder.raw_decode(text, i)
        i = _skip_space(text, i)
        if text[i] != ",":
            return None
        i, index = i + 1, index + 1


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def load_template(path: Path) -> Template:
    return parse_model_file(Path(path), Template)
