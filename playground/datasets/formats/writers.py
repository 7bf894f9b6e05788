"""Write fine-tuning files: one JSON line per example in the chosen format, deterministic (same examples, same bytes).

An example a format cannot hold (a preference pair as prompt/completion, a weight-0 turn as ShareGPT) is
reported as Unfit with the reason, never silently changed.
"""

import json
import os
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType

from ..examples import Example, TrainingMessage
from . import IO_BUFFER, SHAREGPT_NAMES, Unfit, UnfitExamples, check_format


class _CannotWrite(Exception):
    pass


def to_record(example: Example, format: str) -> dict:
    """The example as one JSON object of the format; raises _CannotWrite with the reason when it does not fit."""
    return WRITERS[check_format(format)](example)


def unfit_reason(example: Example, format: str) -> str | None:
    try:
        to_record(example, format)
    except _CannotWrite as e:
        return str(e)
    return None


def unfit_examples(examples: Iterable[Example], format: str) -> list[Unfit]:
    return [Unfit(e, format, reason) for e in examples if (reason := unfit_reason(e, format)) is not None]


def dumps_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def to_line(example: Example, format: str) -> bytes:
    """dumps_line(to_record(example, format)) as UTF-8; for the usual chat example, built directly at a quarter of
    the cost."""
    if format in ("openai-chat", "trl-messages"):
        line = _plain_chat_line(example)
        if line is not None:
            return line
    return dumps_line(to_record(example, format)).encode("utf-8")


# What json.dumps escapes in a string when ensure_ascii is False (control characters, the quote, the backslash),
# and what a line without escapes has besides the texts: two quotes around each of its strings, and its newline.
_CONTROL_BYTES = bytes(range(0x20))
_QUOTES_PER_TURN, _QUOTES_AROUND = 8, 2


def _plain_chat_line(example: Example) -> bytes | None:
    """The openai-chat line of an example with no weights and no text that needs escaping (as trl-messages, the
    same), else None."""
    turns = example.conversation()
    parts = []
    for m in turns:
        if m.weight is not None:
            return None
        parts.append(f'{{"role": "{m.role}", "content": "{m.content}"}}')
    try:
        line = ('{"messages": [' + ", ".join(parts) + "]}\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the general way fails on it as it always did
        return None
    if (line.count(b'"') != _QUOTES_AROUND + _QUOTES_PER_TURN * len(turns) or b"\\" in line
            or len(line.translate(None, _CONTROL_BYTES)) != len(line) - 1):  # a text held a quote, backslash or control
        return None
    return line


def write_examples(examples: Iterable[Example], path: Path, format: str, skip_unfit: bool = False) -> tuple[int, list[Unfit]]:
    """Write one line per example; (written, unfit). Without skip_unfit an unfit example leaves no file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    written, unfit = 0, []
    try:
        with partial.open("wb", buffering=IO_BUFFER) as f:
            for example in examples:
                try:
                    line = to_line(example, format)
                except _CannotWrite as e:
                    unfit.append(Unfit(example, format, str(e)))
                    continue
                f.write(line)
                written += 1
        if unfit and not skip_unfit:
            raise UnfitExamples(unfit)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return written, unfit


def _message_dicts(messages: list[TrainingMessage], with_weight: bool = False) -> list[dict]:
    out = []
    for m in messages:
        item: dict[str, object] = {"role": m.role, "content": m.content}
        if with_weight and m.weight is not None:
            item["weight"] = m.weight
        out.append(item)
    return out


def _no_weight_zero(messages: list[TrainingMessage], format: str) -> None:
    if any(m.weight == 0 for m in messages):
        raise _CannotWrite(f"it has assistant turns with weight 0, which {format} cannot express "
                           "(they would be trained on): export as openai-chat or remove the weights")


def _write_chat(example: Example) -> dict:
    return {"messages": _message_dicts(example.conversation(), with_weight=True)}


def _write_trl_messages(example: Example) -> dict:
    _no_weight_zero(example.conversation(), "trl-messages")
    return {"messages": _message_dicts(example.conversation())}


def _write_completion(example: Example) -> dict:
    turns = example.conversation()
    if [m.role for m in turns] != ["user", "assistant"] or turns[1].weight == 0:
        raise _CannotWrite("prompt/completion holds one user turn and one reply, with no system prompt; "
                           "this example has " + "/".join(m.role for m in turns))
    return {"prompt": turns[0].content, "completion": turns[1].content}


def _preference_pair(example: Example, format: str) -> None:
    if not example.is_preference:
        raise _CannotWrite(f"{format} needs a chosen and a rejected reply, and this example has no preference pair")


def _write_openai_dpo(example: Example) -> dict:
    _preference_pair(example, "openai-dpo")
    return {"input": {"messages": _message_dicts(example.messages)},
            "preferred_output": [{"role": "assistant", "content": example.chosen}],
            "non_preferred_output": [{"role": "assistant", "content": example.rejected}]}


def _write_trl_prompt_completion(example: Example) -> dict:
    turns = example.conversation()
    if turns[-1].role != "assistant" or turns[-1].weight == 0:
        raise _CannotWrite("the completion is the last turn, and here it is not an assistant reply to train on")
    return {"prompt": _message_dicts(turns[:-1]), "completion": _message_dicts(turns[-1:])}


def _write_trl_preference(example: Example) -> dict:
    _preference_pair(example, "trl-preference")
    return {"prompt": _message_dicts(example.messages),
            "chosen": [{"role": "assistant", "content": example.chosen}],
            "rejected": [{"role": "assistant", "content": example.rejected}]}


def _write_sharegpt(example: Example) -> dict:
    turns = example.conversation()
    _no_weight_zero(turns, "sharegpt")
    body = turns[1:] if turns[0].role == "system" else turns
    expected = ["user", "assistant"] * (len(body) // 2)
    if [m.role for m in body] != expected or not body:
        raise _CannotWrite("ShareGPT trainers expect an optional system turn, then human and gpt turns "
                           "alternating, starting with human and ending with gpt")
    return {"conversations": [{"from": SHAREGPT_NAMES[m.role], "value": m.content} for m in turns]}


WRITERS = MappingProxyType({
    "openai-chat": _write_chat, "trl-messages": _write_trl_messages, "openai-completion": _write_completion,
    "openai-dpo": _write_openai_dpo, "trl-prompt-completion": _write_trl_prompt_completion,
    "trl-preference": _write_trl_preference, "sharegpt": _write_sharegpt,
})
