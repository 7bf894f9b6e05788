"""Automatic checks of one reply against what was expected, for batch runs over a prompt set.

Each check compares the reply with its target: the check's own `arg` when given, else the row's `expected`.

- exact: equal after stripping surrounding whitespace (case matters unless `ignore_case`).
- contains: the target occurs in the reply (case matters unless `ignore_case`).
- regex: `re.search(target, reply)`; inline flags such as (?i) or (?s) work.
- json_valid: the whole reply (surrounding whitespace aside) parses as JSON; a code fence fails it,
  because the point is to measure format reliability.
- json_equal: the reply parses as JSON equal to the target (a JSON value, or a string holding one);
  key order is irrelevant, list order matters, true is not 1.
- groups: "Connections"-style grouping. Reply and target list groups, as a JSON list of lists, a JSON
  object of name -> list, or one group per line ("Name: a, b, c, d" or "a, b, c, d"; a line without a
  comma is commentary). Groups compare as sets of items, case-blind, in any order. Passed means the
  whole puzzle is right; score is groups right / max(groups expected, groups given).
"""

import json
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..core.plural import plural

CASE_BLIND_KINDS = ("exact", "contains")
CheckKind = Literal["exact", "contains", "regex", "json_valid", "json_equal", "groups"]
Groups = set[frozenset[str]]

FENCE = re.compile(r"^```[\w-]*\s*\n(.*?)\n?```$", re.DOTALL)
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: CheckKind
    arg: Any = Field(None, description="What to compare with; when left out, the row's expected value.")
    ignore_case: bool = Field(False, description="exact and contains: upper and lower case compare equal.")

    @model_validator(mode="after")
    def _usable_arg(self) -> "Check":
        if self.ignore_case and self.kind not in CASE_BLIND_KINDS:
            raise ValueError(f"ignore_case applies to the exact and contains checks, not {self.kind}"
                             + (": start the expression with (?i) instead" if self.kind == "regex" else ""))
        if self.arg is not None:
            problem = target_problem(self.kind, self.arg)
            if problem:
                raise ValueError(problem)
        return self

    @property
    def needs_target(self) -> bool:
        return self.kind != "json_valid"


class CheckResult(BaseModel):
    passed: bool
    score: float = Field(ge=0, le=1)
    detail: str


def default_check(expected: Any) -> Check | None:
    """The check for a row that gives an expected value but no check: exact for text, json_equal otherwise."""
    if expected is None:
        return None
    return Check(kind="exact" if isinstance(expected, str) else "json_equal")


def target_problem(kind: str, target: Any) -> str | None:
    """Why `target` cannot serve the check, or None."""
    if kind in ("exact", "contains", "regex") and not isinstance(target, str):
        return f"the {kind} check compares with text, not {type(target).__name__}"
    if kind == "regex":
        try:
            re.compile(target)
        except re.error as e:
            return f"the regular expression {target!r} is invalid: {e}"
    if kind == "json_equal" and isinstance(target, str):
        try:
            json.loads(target)
        except json.JSONDecodeError as e:
            return f"the expected value is text that is not JSON ({e.msg}); give the JSON value itself"
    if kind == "groups" and not parse_groups(target):
        return "the expected groups could not be read: give a list of lists or one 'a, b, c' line per group"
    return None


def run_check(check: Check, reply: str, expected: Any = None) -> CheckResult:
    target = check.arg if check.arg is not None else expected
    if check.needs_target:
        problem = "no expected value to compare with" if target is None else target_problem(check.kind, target)
        if problem:
            return CheckResult(passed=False, score=0.0, detail=f"Cannot check: {problem}.")
    if check.ignore_case:
        return CHECKS[check.kind](reply or "", target, fold=True)
    return CHECKS[check.kind](reply or "", target)


def _result(passed: bool, detail: str) -> CheckResult:
    return CheckResult(passed=passed, score=1.0 if passed else 0.0, detail=detail)


def _exact(reply: str, target: str, fold: bool = False) -> CheckResult:
    if reply.strip() == target.strip():
        return _result(True, "Exact match.")
    if reply.strip().casefold() == target.strip().casefold():
        if fold:
            return _result(True, "Exact match, ignoring case.")
        return _result(False, "Differs only in upper/lower case (the check can ignore case).")
    return _result(False, f"Expected {_clip(target.strip())}.")


def _contains(reply: str, target: str, fold: bool = False) -> CheckResult:
    if target in reply:
        return _result(True, f"Contains {_clip(target)}.")
    if target.casefold() in reply.casefold():
        if fold:
            return _result(True, f"Contains {_clip(target)}, ignoring case.")
        return _result(False, f"Contains {_clip(target)} only in other upper/lower case (the check can ignore case).")
    return _result(False, f"Does not contain {_clip(target)}.")


def _regex(reply: str, target: str) -> CheckResult:
    match = re.search(target, reply)
    if match:
        return _result(True, f"Matches /{target}/ at {_clip(match.group(0))}.")
    return _result(False, f"No match for /{target}/.")


def _json_valid(reply: str, target: Any) -> CheckResult:
    parsed, problem = _parse_json(reply)
    return _result(True, "Valid JSON.") if problem is None else _result(False, problem)


def _json_equal(reply: str, target: Any) -> CheckResult:
    parsed, problem = _parse_json(reply)
    if problem:
        return _result(False, problem)
    expected = json.loads(target) if isinstance(target, str) else target
    difference = json_difference(expected, parsed)
    return _result(True, "JSON equal.") if difference is None else _result(False, difference)


def _parse_json(reply: str) -> tuple[Any, str | None]:
    text = reply.strip()
    try:
        return json.loads(text), None
    except json.JSONDecodeError as e:
        hint = " (the JSON is wrapped in a code fence)" if FENCE.match(text) else ""
        return None, f"Not valid JSON{hint}: {e.msg} at line {e.lineno} column {e.colno}."


def json_difference(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where two JSON values first differ, in words; None when equal."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if missing := sorted(set(expected) - set(actual)):
            return f"{path}: missing key {missing[0]!r}."
        if extra := sorted(set(actual) - set(expected)):
            return f"{path}: unexpected key {extra[0]!r}."
        return next((d for k in expected if (d := json_difference(expected[k], actual[k], f"{path}.{k}"))), None)
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{path}: expected {plural(len(expected), 'item')}, got {len(actual)}."
        return next((d for i, (e, a) in enumerate(zip(expected, actual))
                     if (d := json_difference(e, a, f"{path}[{i}]"))), None)
    if _json_kind(expected) == _json_kind(actual) and expected == actual:
        return None
    return f"{path}: expected {json.dumps(expected)[:80]}, got {json.dumps(actual)[:80]}."


def _json_kind(value: Any) -> str:
    # bool is an int in Python; JSON keeps them apart, and 1 and 1.0 are the same JSON number.
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def _groups(reply: str, target: Any) -> CheckResult:
    expected, given = parse_groups(target), parse_groups(reply)
    right = len(expected & given)
    score = right / max(len(expected), len(given))
    if given == expected:
        return CheckResult(passed=True, score=1.0, detail=f"Puzzle solved: all {plural(right, 'group')} right.")
    extra = f"; {plural(len(given), 'group')} given" if len(given) != len(expected) else ""
    return CheckResult(passed=False, score=score, detail=f"{right} of {plural(len(expected), 'group')} right{extra}.")


def parse_groups(value: Any) -> Groups:
    """Groups from a JSON value or from text (JSON, possibly in a code fence, or one group per line)."""
    if isinstance(value, str):
        text = value.strip()
        fenced = FENCE.match(text)
        text = fenced.group(1).strip() if fenced else text
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return _groups_from_lines(text)
        if isinstance(value, str):
            return _groups_from_lines(value)
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        return set()
    groups = set()
    for item in value:
        if isinstance(item, dict):
            item = next((item[k] for k in ("words", "members", "items", "group") if k in item), None)
        if isinstance(item, str):
            item = item.split(",")
        if isinstance(item, list):
            words = frozenset(w for w in (_word(x) for x in item if isinstance(x, (str, int, float))) if w)
            if words:
                groups.add(words)
    return groups


def _groups_from_lines(text: str) -> Groups:
    groups = set()
    for line in text.splitlines():
        items = BULLET.sub("", line).rpartition(":")[2].split(",")
        words = frozenset(w for w in map(_word, items) if w)
        if len(items) > 1 and words:
            groups.add(words)
    return groups


def _word(item: Any) -> str:
    return " ".join(str(item).strip().strip("\"'`[]()").split()).casefold()


def _clip(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


CHECKS: dict[str, Callable[..., CheckResult]] = {"exact": _exact, "contains": _contains, "regex": _regex, "json_valid": _json_valid,
          "json_equal": _json_equal, "groups": _groups}
