"""Read fine-tuning files: one example per JSONL line, in any of the formats.

Reading streams a file line by line, so memory stays flat however large it is, and reports every bad line
with its number and a message that says how to fix it.
"""

import codecs
import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from pydantic import ValidationError

from ...core.errors import FileProblem
from ...core.prompts import NestingTooDeep, loads
from ..examples import Example, Source, TrainingMessage, checked_example, checked_message
from . import IO_BUFFER, ROLES, SHAREGPT_ROLES, BadLines, LineProblem, ParsedLine, check_format, detect_format

# One example per line: even a long-context example with images is a few MB. A longer line is read no further
# (a multi-GB file with no newline would otherwise be held in memory whole) and reported as a bad line.
LINE_LIMIT = 32 * 1024 * 1024

_SAME_ROLES = MappingProxyType({role: role for role in ROLES})
# Keys we cannot keep: silently dropping them would change what the model is trained on.
KEY_HINTS = MappingProxyType({
    "name": "fold the speaker's name into the content ('Name: ...')",
    "tool_calls": "tool calls are not supported",
    "function_call": "function calls are not supported",
    "tool_call_id": "tool results are not supported",
})


def parse_lines(path: Path, format: str | None = None) -> Iterator[ParsedLine]:
    """One ParsedLine per non-blank line, read one at a time; accepts a UTF-8 BOM and CRLF line ends."""
    if format is not None:
        check_format(format)
    path = Path(path)
    if not path.is_file():
        raise FileProblem(path, "there is no such file.")
    file = str(path)
    with path.open("rb", buffering=IO_BUFFER) as f:
        for number, raw in _numbered_lines(f):
            if raw is None:
                yield _too_long(number)
                continue
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            raw = raw.rstrip(b"\r\n")
            if not raw or raw.isspace():  # (isspace: the whitespace strip() strips, without copying the line)
                continue
            yield parse_line(raw, number, file, format)


def _numbered_lines(f) -> Iterator[tuple[int, bytes | None]]:
    """(number, line) for each line of a binary file; None for a line over LINE_LIMIT, skipped unread."""
    lines = iter(functools.partial(f.readline, LINE_LIMIT + 1), b"")
    for number, raw in enumerate(lines, start=1):
        if len(raw) > LINE_LIMIT and not raw.endswith(b"\n"):
            while (rest := f.readline(IO_BUFFER)) and not rest.endswith(b"\n"):
                pass
            raw = None
        yield number, raw


def _too_long(number: int) -> ParsedLine:
    return _bad(number, "line_too_long", f"is longer than {LINE_LIMIT // (1024 * 1024)} MB, too long for one "
                                         "example: check the file has one JSON object per line, or remove this one.")


def parse_line(raw: bytes, number: int, file: str = "", format: str | None = None) -> ParsedLine:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return _bad(number, "not_utf8", f"is not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}): "
                                        "save the file as UTF-8.")
    try:
        record = loads(text)
    except json.JSONDecodeError as e:
        return _bad(number, "invalid_json", f"is not valid JSON ({e.msg} at column {e.colno}): "
                                            "each line must be one complete JSON object.")
    except NestingTooDeep as e:
        return _bad(number, "too_deep", str(e))
    if not isinstance(record, dict):
        return _bad(number, "data_type",
                    f"is a JSON {_json_type(record)}, not an object: each line must be one example {{...}}.")
    kind = format or detect_format(record)
    if kind is None:
        return _bad(number, "missing_messages_list", "has no 'messages' list (nor the keys of any other known "
                                                     "format: prompt/completion, chosen/rejected, conversations).")
    problems: list[tuple[str, str]] = []
    fields = READERS[kind](record, problems)
    example = None if problems else _example(fields, file or None, number, problems)
    if example is not None:
        return ParsedLine(number, kind, example)
    return ParsedLine(number, kind, None, tuple(LineProblem(number, code, message) for code, message in problems))


def _bad(number: int, code: str, message: str) -> ParsedLine:
    return ParsedLine(number, None, None, (LineProblem(number, code, message),))


def _example(fields: dict, file: str | None, number: int, problems: list) -> Example | None:
    if fields.keys() == {"messages"}:  # not a preference pair: the readers have checked all validation would
        example = checked_example(fields["messages"], file, number)
        if example is not None:
            return example
    try:
        return Example(**fields, source=Source(file=file, line=number))
    except ValidationError as e:
        problems.append(("invalid_example", e.errors()[0]["msg"].removeprefix("Value error, ")))
        return None


def read_lines(path: Path, lines: set[int], format: str | None = None) -> Iterator[Example]:
    """The examples on the given lines of a file, parsing only those lines (bad ones are skipped)."""
    wanted = set(lines)
    with Path(path).open("rb", buffering=IO_BUFFER) as f:
        for number, raw in _numbered_lines(f):
            if not wanted:
                return
            if number not in wanted or raw is None:
                continue
            wanted.discard(number)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            parsed = parse_line(raw.rstrip(b"\r\n"), number, str(path), format)
            if parsed.example is not None:
                yield parsed.example


def read_examples(path: Path, format: str | None = None, skip_bad: bool = False) -> tuple[list[Example], list[LineProblem]]:
    """Every example of a small file; raises BadLines (after reading it all) unless skip_bad."""
    examples: list[Example] = []
    problems: list[LineProblem] = []
    for parsed in parse_lines(path, format):
        if parsed.example is not None:
            examples.append(parsed.example)
        problems.extend(parsed.problems)
    if problems and not skip_bad:
        raise BadLines(path, problems)
    return examples, problems


def _shown(content) -> str:
    if isinstance(content, str):
        return "empty content"
    return "null content" if content is None else f"{_a_json_type(content)} as content"


def _a_json_type(value) -> str:
    kind = _json_type(value)
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _json_type(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _messages(value, key: str, problems: list, roles: Mapping[str, str] | None = None, role_key: str = "role",
              content_key: str = "content", allow_weight: bool = False) -> list[TrainingMessage]:
    """Messages from a list of dicts, each problem reported with the message's position."""
    roles = roles or _SAME_ROLES
    if not isinstance(value, list):
        problems.append(("missing_messages_list", f"'{key}' must be a list of messages, not {_a_json_type(value)}."))
        return []
    messages = []
    for n, item in enumerate(value, start=1):
        if type(item) is dict and "weight" not in item and len(item) == 2:  # the usual, good message: checked quickly
            role, content = item.get(role_key), item.get(content_key)
            if type(role) is str and role in roles and type(content) is str and content.strip():
                role = roles[role]  # what validating would build:
                messages.append(_system_message(content) if role == "system" else checked_message(role, content))  # type: ignore[arg-type]  # a role of `roles`
                continue
        message = _message(item, f"message {n}" if key in ("messages", "conversations") else f"{key} message {n}",
                           problems, roles, role_key, content_key, allow_weight)
        if message is not None:
            messages.append(message)
    return messages


@functools.lru_cache(maxsize=1)
def _system_message(content: str) -> TrainingMessage:
    # A dataset repeats one system prompt: one (immutable) message serves every example that has it.
    return checked_message("system", content)


def _message(item, where: str, problems: list, roles: Mapping[str, str], role_key: str, content_key: str,
             allow_weight: bool) -> TrainingMessage | None:
    """A message that is not the usual kind: every problem it has, or the message (with its weight)."""
    if not isinstance(item, dict):
        problems.append(("data_type", f"{where} is {_a_json_type(item)}, not an object."))
        return None
    before = len(problems)
    allowed = {role_key, content_key} | ({"weight"} if allow_weight else set())
    for missing in (k for k in (role_key, content_key) if k not in item):
        problems.append(("message_missing_key", f"{where} has no '{missing}'."))
    for extra in sorted(set(item) - allowed):
        hint = KEY_HINTS.get(extra, f"allowed keys are {', '.join(sorted(allowed))}")
        problems.append(("message_unrecognized_key", f"{where} has an unrecognized key '{extra}': {hint}."))
    role = item.get(role_key)
    if role_key in item and (not isinstance(role, str) or role not in roles):
        problems.append(("unrecognized_role", f"{where} has {role_key} {json.dumps(role)}: "
                                              f"use {', '.join(roles)}."))
    content = item.get(content_key)
    if content_key in item and (not isinstance(content, str) or not content.strip()):
        problems.append(("missing_content", f"{where} has {_shown(content)}: give it the text to train on."))
    weight = item.get("weight")
    if "weight" in item and allow_weight and (type(weight) is not int or weight not in (0, 1) or role not in roles
                                              or roles[role] != "assistant"):
        problems.append(("invalid_weight", f"{where} has weight {json.dumps(weight)}: "
                                           "only assistant messages take a weight, and it is 0 or 1."))
    if len(problems) > before:
        return None
    return TrainingMessage(role=roles[role], content=content, weight=weight)


def _needs_assistant(messages: list[TrainingMessage], problems: list) -> None:
    if not problems and not any(m.role == "assistant" for m in messages):
        problems.append(("example_missing_assistant_message", "has no assistant message: add the reply to train on."))


def _text(record: dict, key: str, problems: list) -> str | None:
    if key not in record:
        problems.append(("missing_field", f"has no '{key}'."))
        return None
    value = record[key]
    if not isinstance(value, str) or not value.strip():
        problems.append(("missing_content", f"'{key}' has {_shown(value)}: give it text."))
        return None
    return value


def _one_reply(value, key: str, problems: list) -> str | None:
    """A preference reply: text, or a list holding one assistant message."""
    if value is None:
        problems.append(("missing_field", f"has no '{key}' reply."))
        return None
    if isinstance(value, str):
        return _text({key: value}, key, problems)
    messages = _messages(value, key, problems)
    if messages and (len(messages) != 1 or messages[0].role != "assistant"):
        problems.append(("bad_preference", f"'{key}' must hold exactly one assistant message."))
        return None
    return messages[0].content if messages else None


def _read_chat(record: dict, problems: list, allow_weight: bool = True) -> dict:
    if "messages" not in record:
        problems.append(("missing_messages_list", "has no 'messages' list."))
        return {}
    messages = _messages(record["messages"], "messages", problems, allow_weight=allow_weight)
    _needs_assistant(messages, problems)
    return {"messages": messages}


def _read_trl_messages(record: dict, problems: list) -> dict:
    return _read_chat(record, problems, allow_weight=False)


def _read_completion(record: dict, problems: list) -> dict:
    prompt, completion = _text(record, "prompt", problems), _text(record, "completion", problems)
    if problems:
        return {}
    return {"messages": [TrainingMessage(role="user", content=prompt),
                         TrainingMessage(role="assistant", content=completion)]}


def _read_openai_dpo(record: dict, problems: list) -> dict:
    given = record.get("input")
    if not isinstance(given, dict) or "messages" not in given:
        problems.append(("missing_messages_list", "has no 'input': {\"messages\": [...]}."))
        return {}
    messages = _messages(given["messages"], "input", problems)
    return _preference(record, messages, "preferred_output", "non_preferred_output", problems)


def _read_trl_prompt_completion(record: dict, problems: list) -> dict:
    prompt = _messages(record.get("prompt"), "prompt", problems)
    completion = _messages(record.get("completion"), "completion", problems)
    if completion and any(m.role != "assistant" for m in completion):
        problems.append(("bad_completion", "'completion' must hold only assistant messages."))
    if not problems and not completion:
        problems.append(("example_missing_assistant_message", "'completion' is empty: add the reply to train on."))
    return {"messages": prompt + completion}


def _read_trl_preference(record: dict, problems: list) -> dict:
    if "prompt" not in record:
        return _read_implicit_preference(record, problems)
    given = record["prompt"]
    prompt = [TrainingMessage(role="user", content=given)] if isinstance(given, str) and given.strip() \
        else _messages(given, "prompt", problems)
    return _preference(record, prompt, "chosen", "rejected", problems)


def _preference(record: dict, prompt: list[TrainingMessage], chosen_key: str, rejected_key: str,
                problems: list) -> dict:
    """A preference example from its prompt and the record's chosen and rejected replies (one message each)."""
    chosen = _one_reply(record.get(chosen_key), chosen_key, problems)
    rejected = _one_reply(record.get(rejected_key), rejected_key, problems)
    _prompt_ends_with_user(prompt, problems)
    return {"messages": prompt, "chosen": chosen, "rejected": rejected}


def _read_implicit_preference(record: dict, problems: list) -> dict:
    """TRL's implicit-prompt form: chosen and rejected are whole conversations sharing all but the last turn."""
    chosen = _messages(record.get("chosen"), "chosen", problems)
    rejected = _messages(record.get("rejected"), "rejected", problems)
    if problems:
        return {}
    last_roles = {chosen[-1].role, rejected[-1].role} if chosen and rejected else set()
    if last_roles != {"assistant"} or chosen[:-1] != rejected[:-1]:
        problems.append(("bad_preference", "has no 'prompt', and 'chosen' and 'rejected' do not share all turns "
                                           "but a last assistant reply."))
        return {}
    _prompt_ends_with_user(chosen[:-1], problems)
    return {"messages": chosen[:-1], "chosen": chosen[-1].content, "rejected": rejected[-1].content}


def _prompt_ends_with_user(messages: list[TrainingMessage], problems: list) -> None:
    if not problems and (not messages or messages[-1].role != "user"):
        problems.append(("bad_preference", "the prompt must end with the user turn the two replies answer."))


def _read_sharegpt(record: dict, problems: list) -> dict:
    if "conversations" not in record:
        problems.append(("missing_messages_list", "has no 'conversations' list."))
        return {}
    messages = _messages(record["conversations"], "conversations", problems, roles=SHAREGPT_ROLES,
                         role_key="from", content_key="value")
    system = record.get("system")
    if isinstance(system, str) and system.strip() and not problems:
        messages.insert(0, TrainingMessage(role="system", content=system))
    _needs_assistant(messages, problems)
    return {"messages": messages}


READERS = MappingProxyType({
    "openai-chat": _read_chat, "trl-messages": _read_trl_messages, "openai-completion": _read_completion,
    "openai-dpo": _read_openai_dpo, "trl-prompt-completion": _read_trl_prompt_completion,
    "trl-preference": _read_trl_preference, "sharegpt": _read_sharegpt,
})

