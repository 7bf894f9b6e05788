"""Fine-tuning file formats (OpenAI, TRL and ShareGPT JSONL): their names, how a record's format is detected,
and the problems reading or writing them reports.

format_readers.py reads files line by line and reports every bad line with its number (the problem codes follow
OpenAI's data-prep cookbook where it has one); format_writers.py writes them, deterministically.
"""

from dataclasses import dataclass
from types import MappingProxyType

from ...core.errors import PlaygroundError
from ..examples import Example

FORMATS = (
    "openai-chat", "openai-completion", "openai-dpo",
    "trl-messages", "trl-prompt-completion", "trl-preference", "sharegpt",
)
ROLES = ("system", "user", "assistant")
# Files are read and written 256 KB at a time: with the default 8 KB, the system calls alone cost a few percent
# of reading, checking and writing a large file.
IO_BUFFER = 1 << 18
SHAREGPT_ROLES = MappingProxyType({"system": "system", "human": "user", "gpt": "assistant"})
SHAREGPT_NAMES = MappingProxyType({role: name for name, role in SHAREGPT_ROLES.items()})


class UnknownFormat(PlaygroundError):
    def __init__(self, name: str):
        super().__init__(f"unknown format '{name}': use one of {', '.join(FORMATS)}.")


@dataclass(frozen=True)
class LineProblem:
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class ParsedLine:
    line: int
    format: str | None
    example: Example | None
    problems: tuple[LineProblem, ...] = ()


class BadLines(PlaygroundError):
    """A file with lines that cannot be read as examples; nothing from it was used."""

    def __init__(self, path, problems: list[LineProblem]):
        self.path, self.problems = str(path), problems
        lines = len({p.line for p in problems})
        super().__init__(f"{self.path}: {lines} bad line{'s' if lines != 1 else ''}, nothing imported; "
                         f"fix {'them' if lines != 1 else 'it'} or skip bad lines.")


@dataclass(frozen=True)
class Unfit:
    """An example a format cannot hold, and why."""

    example: Example
    format: str
    reason: str

    def __str__(self) -> str:
        return f"{locate(self.example)}: cannot be written as {self.format}: {self.reason}"


class UnfitExamples(PlaygroundError):
    def __init__(self, unfit: list[Unfit]):
        self.unfit = unfit
        super().__init__(f"{len(unfit)} example{'s' if len(unfit) != 1 else ''} cannot be written as "
                         f"{unfit[0].format}; nothing was written. Choose another format or leave them out.")


def locate(example: Example) -> str:
    """How a person finds the example: its id once stored, else its line in the file it came from."""
    if example.id is not None:
        return f"example {example.id}"
    if example.source.line is not None:
        return f"line {example.source.line}"
    return "example"


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise UnknownFormat(name)
    return name


def detect_format(record: dict) -> str | None:
    """The format a record is written in, judged by its keys (a messages file is read as openai-chat, a superset of trl-messages)."""
    if "messages" in record:
        return "openai-chat"
    if "conversations" in record:
        return "sharegpt"
    if {"input", "preferred_output", "non_preferred_output"} & record.keys():
        return "openai-dpo"
    if {"chosen", "rejected"} & record.keys():
        return "trl-preference"
    if {"prompt", "completion"} & record.keys():
        if isinstance(record.get("prompt"), list) or isinstance(record.get("completion"), list):
            return "trl-prompt-completion"
        return "openai-completion"
    return None
