"""Tool calls in the formats other than OpenAI's: LLaMA-Factory's ShareGPT convention, and what each format can
carry (the trainer config files written beside an export are trainer_configs.py's).

LLaMA-Factory's ShareGPT: `{"conversations": [{"from": "human" | "gpt" | "function_call" | "observation" |
"system", "value": ...}], "tools": "<the function schemas, a JSON list as a string>"}`. A `function_call` turn's
value is the call as JSON text, `{"name", "arguments": {...}}`, or a list of them for parallel calls; the
`observation` after it holds the result (for parallel calls, a JSON list of the results' texts, in call order).
Human/observation turns sit at odd positions, gpt/function_call turns at even ones. Call ids do not exist there:
reading makes them up (call_1, call_2... in the example), and tool results answer the calls in order.
"""

import json

from ...core.tool_calls import LEGACY_ID, tool_name

SHAREGPT_TOOL_TURNS = frozenset({"function_call", "observation"})
_SHAREGPT_TO_ROLE = {"human": "user", "gpt": "assistant", "system": "system"}


class CannotWrite(Exception):
    """An example a format cannot hold; the message says why."""


# --- what each format carries ------------------------------------------------------------------------------------

# Formats that carry per-message tool fields (tool_calls, tool results, names) and an example's `tools`.
TOOL_FORMATS = frozenset({"openai-chat", "trl-messages", "trl-prompt-completion", "openai-dpo", "trl-preference",
                          "sharegpt"})
# Only OpenAI's own formats have the parallel_tool_calls flag.
PARALLEL_FLAG_FORMATS = frozenset({"openai-chat", "openai-dpo"})
NAME_FORMATS = TOOL_FORMATS - {"sharegpt"}


def check_carried(example, format: str) -> None:
    """Raise CannotWrite when the example has tool data or names the format would have to drop."""
    turns = example.conversation()
    if format not in NAME_FORMATS and any(m.name is not None for m in turns):
        raise CannotWrite(f"it has messages with a speaker 'name', which {format} cannot express: export as "
                          "openai-chat or trl-messages, or fold the names into the content")
    if format not in TOOL_FORMATS and (example.tools is not None or any(m.tool_calls or m.role == "tool" for m in turns)):
        raise CannotWrite(f"it has tools or tool calls, which {format} cannot express: export as openai-chat, "
                          "trl-messages or sharegpt")
    if format not in PARALLEL_FLAG_FORMATS and example.parallel_tool_calls is not None:
        raise CannotWrite("it sets parallel_tool_calls, which only OpenAI's formats carry: export as openai-chat, "
                          "or clear the flag")


def message_dict(m, with_weight: bool = False) -> dict:
    return m.as_record() if with_weight else m.as_openai()


def tool_columns(example) -> dict:
    """An example's `tools` and `parallel_tool_calls`, as OpenAI and TRL lines hold them (absent when unset)."""
    columns = {}
    if example.tools is not None:
        columns["tools"] = example.tools
    if example.parallel_tool_calls is not None:
        columns["parallel_tool_calls"] = example.parallel_tool_calls
    return columns


# --- ShareGPT (LLaMA-Factory) --------------------------------------------------------------------------------------


def sharegpt_has_tools(record: dict) -> bool:
    turns = record.get("conversations")
    return "tools" in record or (isinstance(turns, list) and any(
        isinstance(t, dict) and t.get("from") in SHAREGPT_TOOL_TURNS for t in turns))


def sharegpt_to_openai(record: dict, problems: list) -> tuple[list, list | None]:
    """The conversations as OpenAI message dicts (made-up call ids), and the tools as OpenAI tools."""
    tools = _sharegpt_tools(record["tools"], problems) if "tools" in record else None
    turns = record["conversations"]
    if not isinstance(turns, list):
        return turns, tools  # reported by the reader as any ShareGPT file's
    messages, pending, made = [], [], 0
    for n, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            messages.append(turn)
            continue
        rest = {k: v for k, v in turn.items() if k not in ("from", "value")}
        kind, value = turn.get("from"), turn.get("value")
        if kind == "function_call":
            calls = _sharegpt_calls(value, n, problems)
            ids = [LEGACY_ID.format(made + k) for k in range(1, len(calls) + 1)]
            made += len(calls)
            pending = ids
            messages.append(rest | {"role": "assistant", "content": None, "tool_calls": [
                {"id": i, "type": "function", "function": call} for i, call in zip(ids, calls)]})
        elif kind == "observation":
            messages += _observations(value, pending, n, problems, rest)
            pending = []
        else:
            messages.append(rest | {"role": _SHAREGPT_TO_ROLE.get(kind, kind), "content": value})
    return messages, tools


def _sharegpt_tools(value, problems: list) -> list | None:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError as e:
            problems.append(("invalid_tools", f"'tools' is not valid JSON ({e}): it holds the function schemas as a "
                                              "JSON list in a string."))
            return None
    if not isinstance(value, list):
        problems.append(("invalid_tools", "'tools' must be a JSON list of function schemas (as a string)."))
        return None
    return [t if isinstance(t, dict) and t.get("type") == "function" else {"type": "function", "function": t}
            for t in value]


def _sharegpt_calls(value, n: int, problems: list) -> list[dict]:
    where = f"turn {n} (function_call)"
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    calls = parsed if isinstance(parsed, list) else [parsed]
    out = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            problems.append(("invalid_tool_call", f"{where} must hold the call as JSON text, {{\"name\": ..., "
                                                  "\"arguments\": {...}}, or a list of them."))
            return []
        arguments = call.get("arguments", {})
        out.append({"name": call["name"], "arguments": arguments if isinstance(arguments, str)
                    else json.dumps(arguments, ensure_ascii=False)})
    return out


def _observations(value, pending: list[str], n: int, problems: list, rest: dict) -> list[dict]:
    if not pending:
        problems.append(("unanswered_tool_result", f"turn {n} (observation) follows no function_call turn: put the "
                                                   "call before its result."))
        return []
    if len(pending) == 1:
        return [rest | {"role": "tool", "tool_call_id": pending[0], "content": value}]
    try:
        results = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        results = None
    if not isinstance(results, list) or len(results) != len(pending) or not all(isinstance(r, str) for r in results):
        problems.append(("unanswered_tool_result", f"turn {n} (observation) answers {len(pending)} parallel calls: "
                                                   f"give a JSON list of {len(pending)} result texts, in call order."))
        return []
    return [rest | {"role": "tool", "tool_call_id": i, "content": r} for i, r in zip(pending, results)]


def to_sharegpt_tools(example) -> dict:
    """The ShareGPT line of an example with tool calls, in LLaMA-Factory's convention; CannotWrite when it does not fit."""
    turns = example.conversation()
    conversations = []
    i = 0
    while i < len(turns):
        m = turns[i]
        if m.tool_calls:
            if m.content:
                raise CannotWrite("an assistant turn has both text and tool calls; a sharegpt function_call turn "
                                  "holds only the calls: export as openai-chat or trl-messages")
            conversations.append({"from": "function_call", "value": _calls_text(m.tool_calls)})
            results = turns[i + 1:i + 1 + len(m.tool_calls)]
            if [r.tool_call_id for r in results] != [c.id for c in m.tool_calls]:
                raise CannotWrite("a tool call is not answered right after it, in call order, which sharegpt's "
                                  "observation turn needs")
            texts = [r.content for r in results]
            conversations.append({"from": "observation", "value": texts[0] if len(texts) == 1
                                  else json.dumps(texts, ensure_ascii=False)})
            i += 1 + len(results)
            continue
        if m.role == "tool":
            raise CannotWrite("a tool result answers no call just before it")
        conversations.append({"from": {"user": "human", "assistant": "gpt"}.get(m.role, m.role), "value": m.content})
        i += 1
    froms = [c["from"] for c in conversations]
    body = froms[1:] if froms and froms[0] == "system" else froms
    if (not body or len(body) % 2 or body[0] != "human" or any(f not in ("human", "observation") for f in body[0::2])
            or any(f not in ("gpt", "function_call") for f in body[1::2])):
        raise CannotWrite("ShareGPT trainers expect an optional system turn, then human/observation and "
                          "gpt/function_call turns alternating, starting with human and ending with gpt")
    record: dict[str, object] = {"conversations": conversations}
    if example.tools is not None:
        record["tools"] = _tools_text(example.tools)
    return record


def _calls_text(calls) -> str:
    items = []
    for call in calls:
        try:
            arguments = json.loads(call.function.arguments)
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise CannotWrite(f"the call to {call.function.name} has arguments that are not a JSON object, which "
                              "sharegpt writes as an object")
        items.append({"name": call.function.name, "arguments": arguments})
    return json.dumps(items[0] if len(items) == 1 else items, ensure_ascii=False)


def _tools_text(tools: list) -> str:
    if any(tool_name(t) is None for t in tools):
        raise CannotWrite("a tools entry is not a function tool, and sharegpt lists only functions")
    return json.dumps([t["function"] for t in tools], ensure_ascii=False)
