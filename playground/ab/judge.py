"""An LLM judge: a model plus a rubric template, asked about two answers in both orders (MT-bench's convention).

The rubric is a template file (templates/judge_pairwise.json ships, editable in the Templates tab) whose
messages use {{conversation}}, {{answer_a}} and {{answer_b}}, and optionally {{reference}}. The judge's reply
carries its verdict as [[A]], [[B]] or [[C]] (a tie); a single-answer rubric uses {{answer}} and asks for
"Rating: [[N]]".

Judges favour a position (usually the first), so every pair is asked twice with the answers swapped. The
two verdicts, mapped back to the answers, count when they agree; when they disagree the pair is a tie and a
position-bias event. A reply without exactly one verdict is unparsable and stays so: it is never guessed,
and a pair with an unparsable reply counts for neither answer.

This module is pure: building the judge's messages, reading its replies, combining the two orders. The
call itself goes through batch (ask_row / run_batch), the same provider path every batch row takes.
"""

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from ..core.errors import FileProblem
from ..core.messages import Message
from ..core.prompts import Template, fill_messages, load_template, read_text
from .batch import ColumnConfig
from .promptset import PromptRow

DEFAULT_RUBRIC = "judge_pairwise.json"
PAIRWISE_VARIABLES = ("conversation", "answer_a", "answer_b")
SINGLE_VARIABLES = ("conversation", "answer")
OPTIONAL_VARIABLES = ("reference",)
NO_REFERENCE = "(no reference answer)"
JUDGE_LABEL = "@judge"  # the judge's column in a results file; "@" keeps it apart from user column names

Verdict = Literal["A", "B", "C"]
Winner = Literal["a", "b", "tie"]
VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
RATING = re.compile(r"Rating:\s*\[\[\s*(\d+(?:\.\d+)?)\s*\]\]", re.IGNORECASE)


class BadRubric(FileProblem):
    pass


@dataclass(frozen=True)
class Rubric:
    """A loaded rubric; `version` is a digest of the file's text, so verdicts name the exact wording that made them."""

    name: str
    template: Template
    version: str
    kind: Literal["pairwise", "single"] = "pairwise"


def load_rubric(path: Path, kind: Literal["pairwise", "single"] = "pairwise") -> Rubric:
    """The rubric at `path`; BadRubric when it lacks a needed variable or uses one the judge cannot fill."""
    path = Path(path)
    template = load_template(path)
    version = hashlib.sha1(read_text(path).encode("utf-8")).hexdigest()[:12]
    needed = PAIRWISE_VARIABLES if kind == "pairwise" else SINGLE_VARIABLES
    used = template.variable_names()
    if missing := [n for n in needed if n not in used]:
        names = ", ".join("{{" + n + "}}" for n in missing)
        raise BadRubric(path, f"a {kind} judge rubric must use {names} (it uses "
                        f"{', '.join('{{' + n + '}}' for n in used) or 'no variables'}): add "
                        f"{'them' if len(missing) > 1 else 'it'} where the judge should see "
                        f"{'them' if len(missing) > 1 else 'it'}.")
    unknown = [n for n in used if n not in needed + OPTIONAL_VARIABLES and not template.variables.get(n, "").strip()]
    if unknown:
        raise BadRubric(path, f"the judge cannot fill {', '.join('{{' + n + '}}' for n in unknown)}: a rubric may use "
                        f"{', '.join('{{' + n + '}}' for n in needed + OPTIONAL_VARIABLES)}, or give other "
                        "variables a value under \"variables\".")
    return Rubric(name=path.stem, template=template, version=version, kind=kind)


def render_conversation(messages: Sequence[Message]) -> str:
    """The conversation the answers reply to, as the judge reads it."""
    return "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in messages)


def judge_messages(rubric: Rubric, conversation: str, answer_a: str, answer_b: str,
                   reference: str | None = None) -> list[Message]:
    values = {**rubric.template.variables, "conversation": conversation, "answer_a": answer_a or "(empty)",
              "answer_b": answer_b or "(empty)", "reference": reference if (reference or "").strip() else NO_REFERENCE}
    return fill_messages(rubric.template.messages, values)


def judge_column(model: str, rubric: Rubric) -> ColumnConfig:
    """The judge as a batch column: its model and the rubric's sampling parameters (the rubric's own messages
    travel in each row, so a row id that names the rubric version is enough to keep versions apart)."""
    return ColumnConfig(label=JUDGE_LABEL, model=model, params=rubric.template.params)


def parse_verdict(reply: str) -> Verdict | None:
    """[[A]], [[B]] or [[C]] when the reply holds exactly one kind of them; None otherwise (never a guess)."""
    found = {m.group(1) for m in VERDICT.finditer(reply or "")}
    return cast(Verdict, found.pop()) if len(found) == 1 else None  # the pattern matches only A, B or C


def parse_rating(reply: str) -> float | None:
    """The N of the last "Rating: [[N]]" in a single-answer grade; None when there is none."""
    found = RATING.findall(reply or "")
    return float(found[-1]) if found else None


@dataclass(frozen=True)
class PairJudgement:
    """The judge on answers a and b: `first` with a shown as A, `second` with b shown as A."""

    first: Verdict | None
    second: Verdict | None

    @property
    def unparsable(self) -> bool:
        return self.first is None or self.second is None

    @property
    def position_bias(self) -> bool:
        """Both orders gave a verdict, and they disagree once mapped back to the answers."""
        return not self.unparsable and _as_winner(self.first, False) != _as_winner(self.second, True)

    @property
    def winner(self) -> Winner | None:
        """a, b or tie; None when a reply had no verdict. Disagreeing orders are a tie."""
        if self.unparsable:
            return None
        first = _as_winner(self.first, False)
        return first if first == _as_winner(self.second, True) else "tie"


def _as_winner(verdict: Verdict, swapped: bool) -> Winner:
    if verdict == "C":
        return "tie"
    return ("b" if verdict == "A" else "a") if swapped else ("a" if verdict == "A" else "b")


def pair_rows(row_id: str, conversation: list[Message], answer_a: str, answer_b: str, rubric: Rubric,
              reference: str | None = None) -> tuple[PromptRow, PromptRow]:
    """The two judge requests for one pair, as prompt rows: a shown first, then b shown first.

    Each id names the rubric version and a digest of the answers, so a resumed run reuses a verdict only when
    the judge would be asked exactly the same thing again."""
    text = render_conversation(conversation)
    digest = hashlib.sha1("\x1f".join([rubric.version, text, answer_a, answer_b, reference or ""]).encode()
                          ).hexdigest()[:12]
    return (PromptRow(id=f"{row_id}#ab#{digest}", messages=judge_messages(rubric, text, answer_a, answer_b, reference)),
            PromptRow(id=f"{row_id}#ba#{digest}", messages=judge_messages(rubric, text, answer_b, answer_a, reference)))
