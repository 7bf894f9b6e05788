"""Tool calls in training data: the call model, reading a message's tool fields, and the checks a line gets.

OpenAI's chat format: an example's `tools` are `{"type": "function", "function": {"name", "description",
"parameters": <JSON schema>}}`; an assistant turn's `tool_calls` are `{"id", "type": "function", "function":
{"name", "arguments": "<a JSON object, as a string>"}}`; each call is answered by a `{"role": "tool",
"tool_call_id": ...}` message. The legacy form (top-level `functions`, an assistant `function_call`, `function`
role replies) is read and converted to it. Everything here is plain data in, (code, message) problems out.
"""

import functools
import json
from collections.abc import Iterable
from typing import Literal

import jsonschema
from pydantic import BaseModel, ConfigDict

Problem = tuple[str, str]
LEGACY_ID = "call_{}"  # ids given to legacy function calls, which had none: call_1, call_2... in the example


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    arguments: str  # a JSON object as text, exactly as the model wrote it (checked by check_example)


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    def as_openai(self) -> dict:
        return {"id": self.id, "type": self.type, "function": {"name": self.function.name,
                                                               "arguments": self.function.arguments}}


def tool_name(tool) -> str | None:
    """The function name a `tools` entry declares, or None when it is not a function tool."""
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        name = tool["function"].get("name")
        return name if isinstance(name, str) else None
    return None


def unvalidated(model: type[BaseModel], values: dict, fields_set: set[str]):
    """What model.model_construct(**values) builds, when `values` holds every field, valid, in field order.

    model_construct itself looks up every field's default (and a default factory's signature) on each call,
    which costs more than validating.
    """
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", fields_set)
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


# --- reading -------------------------------------------------------------------------------------------------


def read_tool_calls(value, where: str, problems: list[Problem]) -> tuple[ToolCall, ...] | None:
    """An assistant message's `tool_calls` list, each broken call reported with its position."""
    if not isinstance(value, list) or not value:
        problems.append(("invalid_tool_calls", f"{where} has 'tool_calls' that is not a non-empty list of calls."))
        return None
    calls = []
    for n, item in enumerate(value, start=1):
        call = _read_call(item, f"{where}, tool call {n}", problems)
        if call is not None:
            calls.append(call)
    return tuple(calls) if len(calls) == len(value) else None


def _read_call(item, where: str, problems: list[Problem]) -> ToolCall | None:
    function = item.get("function") if isinstance(item, dict) else None
    if not isinstance(function, dict):
        problems.append(("invalid_tool_call", f"{where} is not {{\"id\", \"type\": \"function\", \"function\": "
                                              "{\"name\", \"arguments\"}}."))
        return None
    before = len(problems)
    if not isinstance(item.get("id"), str) or not item["id"]:
        problems.append(("invalid_tool_call", f"{where} has no 'id': give each call an id its tool reply names."))
    if item.get("type", "function") != "function":
        problems.append(("invalid_tool_call", f"{where} has type {json.dumps(item.get('type'))}: only 'function'."))
    for extra in sorted(set(item) - {"id", "type", "function"}) + sorted(set(function) - {"name", "arguments"}):
        problems.append(("invalid_tool_call", f"{where} has an unrecognized key '{extra}'."))
    if not isinstance(function.get("name"), str) or not function["name"]:
        problems.append(("invalid_tool_call", f"{where} has no function 'name'."))
    if not isinstance(function.get("arguments"), str):
        problems.append(("invalid_tool_call", f"{where} has arguments that are not a string: write the JSON object "
                                              "as text, '{\"city\": \"Oslo\"}'."))
    if len(problems) > before:
        return None
    # Every field checked above: built without validating again (a tool-calling dataset has calls on most lines).
    call = unvalidated(FunctionCall, {"name": function["name"], "arguments": function["arguments"]},
                       {"name", "arguments"})
    return unvalidated(ToolCall, {"id": item["id"], "type": "function", "function": call}, {"id", "type", "function"})


def read_tools(value, problems: list[Problem], key: str = "tools") -> list[dict] | None:
    """An example's `tools` list as given (kept whole, so it writes back the same); each entry's shape is checked by
    check_example, so a line with a bad schema is still read and named with what is wrong."""
    if not isinstance(value, list):
        problems.append(("invalid_tools", f"'{key}' must be a list of tools, not {type(value).__name__}."))
        return None
    if not all(isinstance(tool, dict) for tool in value):
        problems.append(("invalid_tools", f"'{key}' must hold objects, one per tool."))
        return None
    if key == "functions":  # legacy: the function objects themselves
        return [{"type": "function", "function": f} for f in value]
    return value


def has_legacy(messages) -> bool:
    return isinstance(messages, list) and any(
        isinstance(m, dict) and ("function_call" in m or m.get("role") == "function") for m in messages)


def convert_legacy(messages: list) -> list:
    """Legacy messages in today's form: an assistant `function_call` becomes one tool call (with an id made up, as
    it had none), a `function` role reply a tool message answering the latest call to that function."""
    out, ids, made = [], {}, 0
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "assistant" and "function_call" in m:
            made += 1
            call = m["function_call"]
            if isinstance(call, dict):
                ids[call.get("name")] = LEGACY_ID.format(made)
            m = {k: v for k, v in m.items() if k != "function_call"} | {
                "tool_calls": [{"id": LEGACY_ID.format(made), "type": "function", "function": call}]}
        elif isinstance(m, dict) and m.get("role") == "function":
            m = {k: v for k, v in m.items() if k != "name"} | {"role": "tool", "tool_call_id": ids.get(m.get("name"), "")}
        out.append(m)
    return out


# --- checks --------------------------------------------------------------------------------------------------


class ToolChecks:
    """check_example for one example after another: a tools list equal to the last one's is not checked again (a
    dataset repeats one tools list on every line, and checking its schemas costs more than reading the line)."""

    def __init__(self):
        self.tools: list | None = None
        self.tools_problems: list[Problem] = []

    def check(self, messages: Iterable, tools: list | None) -> list[Problem]:
        if tools is None or tools != self.tools:
            self.tools, self.tools_problems = tools, check_tools(tools or [])
        return self.tools_problems + check_messages(messages, tools)


def check_example(messages: Iterable, tools: list | None) -> list[Problem]:
    """What is wrong with an example's tool calls and tools: each problem says where and what to do. (An assistant
    turn with neither content nor calls is validation's missing_content.)"""
    return check_tools(tools or []) + check_messages(messages, tools)


def check_messages(messages: Iterable, tools: list | None) -> list[Problem]:
    """Problems of the calls and results: ids, arguments, functions not in `tools` (when the example has tools)."""
    problems: list[Problem] = []
    declared = {tool_name(t) for t in tools or []} - {None}
    called: set[str] = set()
    for n, m in enumerate(messages, start=1):
        if m.role == "assistant" and m.tool_calls:
            problems += _check_calls(m.tool_calls, n, declared, called, tools is not None)
        elif m.role == "tool" and m.tool_call_id not in called:
            problems.append(("unanswered_tool_result", f"message {n} (tool) answers tool call id "
                                                       f"{json.dumps(m.tool_call_id)}, which no earlier assistant turn "
                                                       "made: give it the id of the call it answers."))
    return problems


def _check_calls(calls, n: int, declared: set, called: set, has_tools: bool) -> list[Problem]:
    problems = []
    for k, call in enumerate(calls, start=1):
        where = f"message {n} (assistant), tool call {k} ({call.function.name})"
        if call.id in called:
            problems.append(("duplicate_tool_call_id", f"{where} reuses the id {json.dumps(call.id)}: every call "
                                                       "needs an id of its own."))
        called.add(call.id)
        if not _is_json_object(call.function.arguments):
            problems.append(("arguments_not_json_object", f"{where} has arguments that are not a JSON object "
                                                          f"({_preview(call.function.arguments)}): write them as "
                                                          "{\"name\": value, ...}."))
        if has_tools and call.function.name not in declared:
            problems.append(("unknown_function", f"{where} calls a function not in the example's tools "
                                                 f"({', '.join(sorted(declared)) or 'none'}): add it to tools or fix "
                                                 "the name."))
    return problems


def check_tools(tools: list) -> list[Problem]:
    problems, names = [], set()
    for n, tool in enumerate(tools, start=1):
        name = tool_name(tool)
        if name is None or not isinstance(tool, dict) or tool.get("type") != "function":
            problems.append(("invalid_tool", f"tool {n} is not {{\"type\": \"function\", \"function\": {{\"name\", "
                                             "\"description\", \"parameters\"}}}."))
            continue
        if name in names:
            problems.append(("duplicate_tool", f"tool {n} declares '{name}' a second time: keep one."))
        names.add(name)
        schema = tool["function"].get("parameters")
        if schema is not None and (reason := schema_problem(schema)) is not None:
            problems.append(("invalid_tool_schema", f"tool {n} ({name}) has parameters that are not a valid JSON "
                                                    f"schema: {reason}"))
    return problems


def schema_problem(schema) -> str | None:
    """Why a value is not a valid JSON schema (checked against the Draft 2020-12 metaschema), or None."""
    if not isinstance(schema, dict):
        return "it must be an object, like {\"type\": \"object\", \"properties\": {...}}."
    return _schema_problem(json.dumps(schema, sort_keys=True))


@functools.lru_cache(maxsize=64)  # a dataset repeats its few schemas on every line
def _schema_problem(key: str) -> str | None:
    try:
        jsonschema.Draft202012Validator.check_schema(json.loads(key))
    except jsonschema.SchemaError as e:
        place = "/".join(str(p) for p in e.absolute_path)
        return f"{e.message}{f' at {place}' if place else ''}."
    return None


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _preview(text: str) -> str:
    return json.dumps(text if len(text) <= 40 else text[:37] + "...")
