"""`python -m playground eval`: a prompt set through several models, checks and an LLM judge, for CI.

Exit codes: 0 when every --fail-under holds, 1 when one is missed, 2 on bad input (the reason on stderr).
Everything that can be wrong with the input is checked before the first request, and before the results file
is touched. With --json, stdout is one JSON object (the contract below) and nothing else.

    {"rows": N, "columns": {NAME: {"checks": {KIND: rate}, "judge": {"win_rate": x, "ci": [lo, hi],
     "position_bias": y, "unparsable": n} | null, "tokens": t, "cost_usd": c, "latency_ms": {"p50": a, "p95": b}}}}
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from ..ab.batch import ColumnConfig
from ..ab.checks import CheckKind
from ..ab.eval_run import EvalOutcome, JudgeSetup, never_judged, report, run_eval
from ..ab.judge import DEFAULT_RUBRIC, load_rubric
from ..ab.promptset import PromptRow
from ..ab.sources import dataset_split_rows, prompt_set_rows, results_path
from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..services import PROJECT_ROOT, build_services

CHECK_KINDS = get_args(CheckKind)
SPLITS = ("train", "validation", "test")


class BadEvalInput(PlaygroundError):
    pass


@dataclass(frozen=True)
class Threshold:
    column: str | None
    check: str
    rate: float

    def __str__(self) -> str:
        return f"{self.column + ':' if self.column else ''}{self.check}={self.rate:g}"


def add_eval_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval", help="Run a prompt set through models with checks and an LLM judge; exit 1 below --fail-under.",
        description="Exit 0 when every --fail-under holds, 1 when one is missed, 2 on bad input.")
    parser.add_argument("promptset", metavar="PROMPTSET",
                        help="A prompt-set JSONL file (as batch runs read), or dataset:NAME:SPLIT (e.g. "
                             "dataset:town:validation, split as the Datasets tab splits it).")
    parser.add_argument("--column", action="append", required=True, metavar="NAME=PROVIDER:MODEL",
                        help="A column to evaluate; give two or more for the judge to compare.")
    parser.add_argument("--persona", default=None, help="Send every column this persona's system prompt and parameters.")
    parser.add_argument("--judge", default=None, metavar="PROVIDER:MODEL",
                        help="Judge every pair of columns on every row, in both orders.")
    parser.add_argument("--rubric", type=Path, default=None,
                        help=f"The judge's rubric template (default templates/{DEFAULT_RUBRIC}).")
    parser.add_argument("--concurrency", type=int, default=4, metavar="N", help="Requests at once (default 4).")
    parser.add_argument("--out", type=Path, default=None,
                        help="Results JSONL, one line per answer and per judge reply (default HOME/batches/...).")
    parser.add_argument("--resume", action="store_true",
                        help="Continue the results file of a run that stopped: finished rows are not asked again.")
    parser.add_argument("--fail-under", action="extend", nargs="+", default=[], metavar="[COLUMN:]CHECK=RATE",
                        help="Exit 1 when a pass rate (0-1) is below RATE. CHECK is a check kind "
                             f"({', '.join(CHECK_KINDS)}) or judge (pairwise win rate, ties as halves); "
                             "without COLUMN it applies to every column.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object (the CI contract) on stdout.")
    parser.add_argument("--home", type=Path, default=None,
                        help="Folder of the database and settings (default $PLAYGROUND_HOME or ./.playground).")
    parser.add_argument("--providers", type=Path, default=None,
                        help="Providers file of OpenAI-compatible endpoints (default HOME/providers.json).")
    return parser


def run(args) -> int:
    try:
        plan = prepare(args)
        outcome = run_eval(plan.rows, plan.columns, plan.path, plan.services.registry.resolve,
                           plan.services.prices(), plan.judge, workers=args.concurrency)
        if never_judged(outcome):
            raise BadEvalInput(silent_judge(outcome, plan.path))
    except PlaygroundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = report(outcome)
    misses = missed(summary, plan.thresholds)
    print(json.dumps(summary) if args.json else describe(outcome, summary, plan.path))
    for line in misses:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if misses else 0


@dataclass
class Plan:
    services: object
    rows: list[PromptRow]
    columns: list[ColumnConfig]
    judge: JudgeSetup | None
    thresholds: list[Threshold]
    path: Path


def prepare(args) -> Plan:
    """Everything the run needs, each input checked (BadEvalInput) before a request is sent or a file touched."""
    if args.concurrency < 1:
        raise BadEvalInput("--concurrency must be 1 or more.")
    services = build_services(home=args.home, providers_file=args.providers, detect_local=False, discover=False)
    for problem in services.problems:
        print(f"warning: {problem}", file=sys.stderr)
    problems = services.registry.refresh()
    columns = [parse_column(spec, services, problems) for spec in args.column]
    _unique([c.label for c in columns])
    columns = with_persona(columns, args.persona, services.personas)
    rows = load_rows(args.promptset, services.store)
    judge = None
    if args.judge:
        check_model(args.judge, "--judge", services.registry, problems)
        if len(columns) < 2:
            raise BadEvalInput("The judge compares columns: give two or more --column, or leave out --judge.")
        judge = JudgeSetup(args.judge, load_rubric(args.rubric or PROJECT_ROOT / "templates" / DEFAULT_RUBRIC))
    thresholds = [parse_threshold(t, columns, rows, judge is not None) for t in args.fail_under]
    path = args.out or results_path(services.home, f"eval-{Path(args.promptset).stem}", rows, columns)
    if not args.resume and path.exists() and path.stat().st_size:
        raise BadEvalInput(f"{path} already holds results: add --resume to continue that run (finished rows are "
                           "not asked again), or give another --out.")
    return Plan(services, rows, columns, judge, thresholds, path)


def silent_judge(outcome: EvalOutcome, path: Path) -> str:
    failed = next((r.error for r in outcome.judge_results if r.error), None)
    why = (f"its requests failed ({failed})" if failed else "the rubric must ask for [[A]], [[B]] or [[C]], and "
           "the judge must follow it")
    return (f"The judge {outcome.judge_model} gave no verdict in any of its "
            f"{plural(2 * len(outcome.judged), 'reply', 'replies')}: {why}. Its replies are in {path}; pick another "
            "judge or fix the rubric.")


def parse_column(spec: str, services, problems: dict[str, str]) -> ColumnConfig:
    name, sep, ref = spec.partition("=")
    if not sep or not name.strip() or not ref.strip():
        raise BadEvalInput(f"--column '{spec}' must be NAME=PROVIDER:MODEL, e.g. base=openai:gpt-4o-mini.")
    check_model(ref.strip(), f"--column {name.strip()}", services.registry, problems)
    return ColumnConfig(label=name.strip(), model=ref.strip())


def check_model(ref: str, what: str, registry, problems: dict[str, str]) -> None:
    """A model the run can call: a configured provider, and a model it lists (or was told to offer)."""
    provider, sep, model = ref.partition(":")
    served = registry.models()
    if not sep or not provider or not model:
        raise BadEvalInput(f"{what}: '{ref}' must be PROVIDER:MODEL; providers here: {', '.join(served)}.")
    if provider not in served:
        raise BadEvalInput(f"{what}: there is no provider named '{provider}' (providers here: {', '.join(served)}). "
                           "Add it to providers.json, or set OPENAI_API_KEY for openai.")
    if model not in served[provider]:
        why = f" It did not answer: {problems[provider]}" if provider in problems else ""
        listed = ", ".join(served[provider][:12]) or "nothing"
        raise BadEvalInput(f"{what}: {provider} serves no model '{model}' (it lists {listed}).{why}")


def _unique(labels: list[str]) -> None:
    if len(set(labels)) < len(labels):
        raise BadEvalInput(f"Column names must differ: {', '.join(labels)}.")


def with_persona(columns: list[ColumnConfig], persona: str | None, personas: dict) -> list[ColumnConfig]:
    if persona is None:
        return columns
    if persona not in personas:
        raise BadEvalInput(f"There is no persona named '{persona}' (personas: {', '.join(sorted(personas))}).")
    found = personas[persona]
    return [c.model_copy(update={"system_prompt": found.system_prompt, "params": found.params}) for c in columns]


def load_rows(source: str, store) -> list[PromptRow]:
    if source.startswith("dataset:"):
        _, name, split = (source.split(":", 2) + [""])[:3]
        if not name or split not in SPLITS:
            raise BadEvalInput(f"'{source}' must be dataset:NAME:SPLIT with SPLIT one of {', '.join(SPLITS)}.")
        return dataset_split_rows(store, name, split)
    if not Path(source).is_file():
        raise BadEvalInput(f"{source}: no such prompt-set file (or use dataset:NAME:validation).")
    return prompt_set_rows(Path(source)).rows


def parse_threshold(spec: str, columns: list[ColumnConfig], rows: list[PromptRow], judged: bool) -> Threshold:
    left, sep, rate = spec.rpartition("=")
    column, _, check = left.rpartition(":")
    try:
        value = float(rate.strip().rstrip("%")) / (100 if rate.strip().endswith("%") else 1)
    except ValueError:
        value = -1.0
    if not sep or not check or not 0 <= value <= 1:
        raise BadEvalInput(f"--fail-under '{spec}' must be [COLUMN:]CHECK=RATE with RATE from 0 to 1, "
                           "e.g. exact=0.8 or tuned:judge=0.5.")
    if column and column not in {c.label for c in columns}:
        raise BadEvalInput(f"--fail-under '{spec}': there is no column '{column}'.")
    used = {r.check.kind for r in rows if r.check is not None}
    if check == "judge":
        if not judged:
            raise BadEvalInput(f"--fail-under '{spec}' needs --judge (and two or more columns).")
    elif check not in CHECK_KINDS:
        raise BadEvalInput(f"--fail-under '{spec}': '{check}' is not a check; use one of "
                           f"{', '.join(CHECK_KINDS)} or judge.")
    elif check not in used:
        raise BadEvalInput(f"--fail-under '{spec}': no row of the prompt set uses the {check} check "
                           f"({'it uses ' + ', '.join(sorted(used)) if used else 'it has no checks'}).")
    return Threshold(column or None, check, value)


def missed(summary: dict, thresholds: list[Threshold]) -> list[str]:
    lines = []
    for threshold in thresholds:
        for name, column in summary["columns"].items():
            if threshold.column not in (None, name):
                continue
            if threshold.check == "judge":
                value = (column["judge"] or {}).get("win_rate")
            else:
                value = column["checks"].get(threshold.check)
            if value is None or value < threshold.rate:
                shown = "no readable verdict" if value is None else f"{value:.3f}"
                lines.append(f"{name} {threshold.check}: {shown} < {threshold.rate:g} ({threshold})")
    return lines


def describe(outcome: EvalOutcome, summary: dict, path: Path) -> str:
    lines = [f"{plural(summary['rows'], 'row')}, {plural(len(outcome.columns), 'column')}: "
             f"{plural(outcome.asked, 'request')} sent this run, {outcome.answers.resumed} answers kept from an "
             f"earlier one. Results: {path}"]
    for name, column in summary["columns"].items():
        result = next(s for s in outcome.answers.summaries if s.column == name)
        lines.append(f"\n{name}  ({result.model})" + (f"  {plural(result.errors, 'error')}" if result.errors else ""))
        for kind, rate in column["checks"].items():
            lines.append(f"  {kind:<11} {rate:6.1%} passed")
        if (judged := column["judge"]) is not None:
            if judged["win_rate"] is None:
                lines.append(f"  judge       no readable verdict ({judged['unparsable']} unparsable)")
            else:
                lo, hi = judged["ci"]
                lines.append(f"  judge       {judged['win_rate']:6.1%} win rate (95% CI {lo:.0%}-{hi:.0%}), position "
                             f"bias {judged['position_bias']:.0%}, {judged['unparsable']} unparsable")
        cost = "no price" if column["cost_usd"] is None else f"${column['cost_usd']:.4f}"
        latency = column["latency_ms"]
        timing = ("" if latency["p50"] is None
                  else f", latency p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms")
        lines.append(f"  {column['tokens']:,} tokens, {cost}{timing}")
    if outcome.judge_model:
        tokens, cost = outcome.judge_usage()
        lines.append(f"\njudge {outcome.judge_model}: {tokens:,} tokens, "
                     + ("no price" if cost is None else f"${cost:.4f}"))
    return "\n".join(lines)
