"""`python -m playground dataset ...`: import, validate, measure and export fine-tuning datasets.

Each handler takes the parsed arguments and a Store, prints its result and returns the exit code;
the domain raises PlaygroundError, which `run` prints as one line.
"""

import argparse
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

from ..ab.to_dataset import add_vote_pairs
from ..ab.votes import VoteFilter
from ..chat.personas import load_personas
from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..core.store import Store
from ..core.tokens import encoding_name, model_label, tokenizer_ref
from ..datasets.examples import DEFAULT_MODEL
from ..datasets.formats import FORMATS, BadLines
from ..datasets.formats.trainer_configs import write_trainer_configs
from ..datasets.formats.writers import unfit_examples, write_examples
from ..datasets.splits import split_examples
from ..datasets.stats import dataset_stats, training_costs
from ..datasets.store import ImportReport, import_file, iter_examples, list_datasets
from ..datasets.transcripts import ConversionOptions
from ..datasets.validation import Finding, has_errors, validate_examples, validate_file, validate_splits
from ..services import PROJECT_ROOT, home_dir


class NoSuchTarget(PlaygroundError):
    def __init__(self, target: str):
        super().__init__(f"'{target}' is neither a file nor a dataset name: give a JSONL file or see `dataset list`.")


def add_dataset_commands(subparsers) -> argparse.ArgumentParser:
    """Add `dataset` and its subcommands to a root parser's subparsers; each sets `dataset_handler`."""
    dataset = subparsers.add_parser("dataset", help="Import, check, measure and export fine-tuning datasets.")
    commands = dataset.add_subparsers(dest="dataset_command", required=True, metavar="COMMAND")
    for add in (_add_import, _add_validate, _add_stats, _add_export, _add_list, _add_from_votes):
        command = add(commands)
        command.add_argument("--home", type=Path, default=None,
                             help="Folder of the database (default $PLAYGROUND_HOME or ./.playground).")
    return dataset


def _add_import(commands) -> argparse.ArgumentParser:
    command = commands.add_parser("import", help="Import a JSONL file as a new dataset (its format is detected).")
    command.add_argument("file", type=Path, help="A JSONL file in any of: " + ", ".join(FORMATS) + ".")
    command.add_argument("--name", required=True, help="Name of the new dataset.")
    command.add_argument("--description", default="", help="What the dataset is for.")
    command.add_argument("--format", choices=FORMATS, default=None,
                         help="Read every line as this format instead of detecting it.")
    command.add_argument("--skip-bad", action="store_true",
                         help="Import the good lines and list the bad ones (default: any bad line imports nothing).")
    command.set_defaults(dataset_handler=import_command)
    return command


def _add_validate(commands) -> argparse.ArgumentParser:
    command = commands.add_parser("validate", help="Check a JSONL file or a stored dataset; exit 1 on errors.")
    command.add_argument("target", metavar="FILE_OR_NAME", help="A JSONL file, or the name of a stored dataset.")
    _add_checks(command)
    _add_counting(command)
    command.add_argument("--format", choices=FORMATS, default=None, help="For a file: read it as this format.")
    command.set_defaults(dataset_handler=validate_command)
    return command


def _add_stats(commands) -> argparse.ArgumentParser:
    command = commands.add_parser("stats", help="Tokens per example, billed tokens and estimated training cost.")
    command.add_argument("name", help="Dataset name.")
    command.add_argument("--model", default=DEFAULT_MODEL, help=f"Count tokens for this model (default {DEFAULT_MODEL}).")
    _add_counting(command)
    command.add_argument("--epochs", type=_positive_int, default=None,
                         help="Epochs to bill (default: OpenAI's default for the dataset's size).")
    command.add_argument("--json", action="store_true", help="Print the numbers as JSON.")
    command.set_defaults(dataset_handler=stats_command)
    return command


def _add_export(commands) -> argparse.ArgumentParser:
    command = commands.add_parser("export", help="Write a dataset as JSONL for a trainer; refused when validation has errors.")
    command.add_argument("name", help="Dataset name.")
    command.add_argument("--format", choices=FORMATS, required=True, help="The trainer's format.")
    command.add_argument("--split", default=None, metavar="RATIOS",
                         help="Split into train/validation(/test) files, e.g. 80/20 or 60/20/20.")
    command.add_argument("--seed", type=int, default=0, help="Shuffle seed for --split: same seed, same files (default 0).")
    command.add_argument("--out", type=Path, required=True, metavar="DIR", help="Folder to write the files into.")
    command.add_argument("--skip-bad", action="store_true",
                         help="Leave out (and list) examples the format cannot hold, instead of writing nothing.")
    _add_checks(command)
    command.set_defaults(dataset_handler=export_command)
    return command


def _add_list(commands) -> argparse.ArgumentParser:
    command = commands.add_parser("list", help="Datasets with their example counts and tokens.")
    command.set_defaults(dataset_handler=list_command)
    return command


def _add_from_votes(commands) -> argparse.ArgumentParser:
    command = commands.add_parser("from-votes", help="Add the preference (DPO) pairs of A/B votes to a dataset.")
    command.add_argument("name", help="Dataset name (created if new); pairs it already holds are not added again.")
    command.add_argument("--persona", default=None, help="Only votes on rounds where a column used this persona.")
    command.add_argument("--blind-only", action="store_true", help="Only votes cast before the names were shown.")
    command.add_argument("--system", choices=["deploy", "persona", "none"], default="deploy",
                         help="The prompt's system message: the persona's deploy prompt (default), as sent, or none.")
    command.add_argument("--keep-seeds", action="store_true", help="Keep the persona's few-shot seed turns.")
    command.add_argument("--personas-dir", type=Path, default=None,
                         help="Where the personas are (default: the project's personas folder).")
    command.set_defaults(dataset_handler=from_votes_command)
    return command


def _add_counting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokenizer", metavar="PATH", default=None,
                        help="Count with an open model's tokenizer: a local tokenizer.json, a folder holding one, or a "
                             "Hugging Face cache folder (models--org--name). Never downloaded. Replaces --model.")
    parser.add_argument("--context", metavar="N", type=_positive_int, default=None,
                        help="The training context in tokens (default: the model's; 65,536 for a tokenizer).")


def _counted_for(args) -> str:
    """What tokens are counted for: the --tokenizer's file, or the --model."""
    return tokenizer_ref(args.tokenizer) if args.tokenizer else args.model


def _add_checks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"Check token counts against this model's training context (default {DEFAULT_MODEL}).")
    parser.add_argument("--deploy-prompt", default=None,
                        help="The system prompt the fine-tune will be deployed with: examples should use exactly it.")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def store_for(args) -> Store:
    home = args.home or home_dir()
    return Store(Path(home) / "playground.db")


def run(args) -> int:
    """Run a parsed `dataset` command against the store in --home."""
    try:
        return args.dataset_handler(args, store_for(args))
    except PlaygroundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


# --- handlers ------------------------------------------------------------------------------------------


def import_command(args, store: Store) -> int:
    try:
        report = import_file(store, args.file, args.name, format=args.format, skip_bad=args.skip_bad,
                             description=args.description)
    except BadLines as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        lines = len({p.line for p in e.problems})
        print(f"error: {plural(lines, 'bad line')} in {e.path}; nothing was imported. "
              f"Fix {'it' if lines == 1 else 'them'}, or pass --skip-bad to import the other lines.", file=sys.stderr)
        return 1
    print(_imported(report))
    if report.skipped:
        print(f"Skipped {plural(len({p.line for p in report.skipped}), 'bad line')}:", file=sys.stderr)
        for problem in report.skipped:
            print(problem, file=sys.stderr)
    return 0


def _imported(report: ImportReport) -> str:
    formats = ", ".join(f"{n} {name}" for name, n in sorted(report.formats.items()))
    return f"Imported {plural(report.imported, 'example')} into '{report.dataset}' ({formats})."


def validate_command(args, store: Store) -> int:
    """Each finding on a line of its own: `line N: ...` for a file, `example ID: ...` for a stored dataset."""
    path = Path(args.target)
    model = _counted_for(args)
    if path.is_file():
        findings = validate_file(path, model, args.deploy_prompt, args.format, context=args.context)
    else:
        if args.target not in {d.name for d in list_datasets(store)}:
            raise NoSuchTarget(args.target)
        findings = validate_examples(list(iter_examples(store, args.target, include_excluded=False)),
                                     model, args.deploy_prompt, context=args.context)
    for finding in findings:
        print(finding)
    print(_tally(findings), file=sys.stderr)
    return 1 if has_errors(findings) else 0


def _tally(findings: list[Finding]) -> str:
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    verdict = "fix the errors before training" if errors else "ready to train" + (
        " once you have judged the warnings" if warnings else "")
    return f"{plural(errors, 'error')}, {plural(warnings, 'warning')}: {verdict}."


def stats_command(args, store: Store) -> int:
    examples = list(iter_examples(store, args.name))
    model = _counted_for(args)
    stats = dataset_stats(examples, model, args.epochs, context=args.context)
    # An open model's tokenizer has no OpenAI price: its plan is not priced with OpenAI's table.
    costs = training_costs(examples, args.epochs) if stats.cost.usd is not None else []
    if args.json:
        print(json.dumps({**asdict(stats), "costs": [asdict(c) for c in costs]}, indent=2))
        return 0
    estimate = "" if encoding_name(model)[1] else " (estimated with an OpenAI tokenizer)"
    excluded = f" ({stats.excluded} excluded, not counted)" if stats.excluded else ""
    epochs = f"{stats.cost.epochs}" + (" (OpenAI's default for this size)" if args.epochs is None else "")
    print(f"{args.name}: {plural(stats.examples, 'example')}{excluded}")
    print(f"tokens per example for {model_label(stats.model)}{estimate}: min {stats.tokens_min:,}, median {stats.tokens_median:,.0f}, "
          f"p95 {stats.tokens_p95:,}, max {stats.tokens_max:,}; total {stats.tokens_total:,}")
    print(f"over the {stats.context_limit:,}-token training context (cut from the end): {stats.over_limit}")
    print(f"epochs: {epochs}; billed tokens: {stats.cost.billed_tokens:,}")
    if not costs:
        print("estimated training cost: no price known for it")
        return 0
    print("estimated training cost (billed tokens x price per 1M training tokens):")
    for cost in costs:
        print(f"  {cost.model:<16} {cost.epochs:>2} epochs {cost.billed_tokens:>14,} tokens  ${cost.usd:,.2f}")
    return 0


def export_command(args, store: Store) -> int:
    examples = list(iter_examples(store, args.name, include_excluded=False))
    findings = validate_examples(examples, args.model, args.deploy_prompt)
    if _refused(findings, f"validate {args.name}"):
        return 1
    unfit = unfit_examples(examples, args.format)
    for item in unfit:
        print(item, file=sys.stderr)
    if unfit and not args.skip_bad:
        print(f"error: nothing written: {plural(len(unfit), 'example')} {'does' if len(unfit) == 1 else 'do'} not fit {args.format}. Choose another format, "
              "or pass --skip-bad to leave them out.", file=sys.stderr)
        return 1
    left_out = {id(u.example) for u in unfit}
    examples = [e for e in examples if id(e) not in left_out]
    if args.split:
        outputs = {f"{name}.jsonl": part for name, part in split_examples(examples, args.split, args.seed).items()}
        if _refused(validate_splits({name.removesuffix(".jsonl"): part for name, part in outputs.items()}), "split"):
            return 1
    else:
        outputs = {f"{_file_stem(args.name)}.jsonl": examples}
    for filename, part in outputs.items():
        write_examples(part, args.out / filename, args.format)
        print(f"{args.out / filename}: {plural(len(part), 'example')}")
    for config in write_trainer_configs(args.out, [args.out / f for f in outputs], args.format, examples):
        print(f"{config}: the trainer's config for these files")
    return 0


def _refused(findings: list[Finding], what: str) -> bool:
    errors = [f for f in findings if f.severity == "error"]
    for finding in errors:
        print(finding, file=sys.stderr)
    if errors:
        print(f"error: not exported: fix the {plural(len(errors), 'error')} above ({what}); warnings do not block.",
              file=sys.stderr)
        return True
    warnings = len(findings)
    if warnings:
        print(f"note: {warnings} warning{'s' if warnings != 1 else ''}; `dataset validate` lists them.", file=sys.stderr)
    return False


def _file_stem(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "dataset"


def list_command(args, store: Store) -> int:
    datasets = list_datasets(store)
    if not datasets:
        print("No datasets yet: `dataset import FILE --name NAME` adds one.", file=sys.stderr)
    for d in datasets:
        excluded = f" (+{d.excluded} excluded)" if d.excluded else ""
        print(f"{d.name}: {plural(d.examples, 'example')}{excluded}, {plural(d.tokens, 'token')}  {d.description}".rstrip())
    return 0



def from_votes_command(args, store: Store) -> int:
    personas, _ = load_personas(args.personas_dir or PROJECT_ROOT / "personas")
    added = add_vote_pairs(store, args.name, personas, VoteFilter(blind_only=args.blind_only, persona=args.persona),
                           ConversionOptions(system=args.system, keep_seed_turns=args.keep_seeds))
    print(added.describe().replace("**", ""))
    return 0
