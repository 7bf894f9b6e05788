"""`python -m playground finetune ...`: start, follow, list and cancel fine-tuning jobs from stored datasets.

Each handler takes the parsed arguments and the Services, prints its result and returns the exit code.
What a script wants (the job id, the status) goes to stdout; estimates, warnings and errors to stderr.
"""

import argparse
import sys
from pathlib import Path

from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..datasets.splits import DEFAULT_RATIOS
from ..finetune import jobs as finetune
from ..finetune.jobs import NotReady, export_advice, make_settings
from ..finetune.store import JobRecord, get_job, list_jobs
from ..providers import ProviderError
from ..services import build_services


def add_finetune_commands(subparsers) -> argparse.ArgumentParser:
    """Add `finetune` and its subcommands to a root parser's subparsers; each sets `finetune_handler`."""
    parser = subparsers.add_parser("finetune", help="Start and follow fine-tuning jobs made from a stored dataset.")
    commands = parser.add_subparsers(dest="finetune_command", required=True, metavar="COMMAND")
    start = commands.add_parser("start",
                                help="Validate a dataset, upload its split and start a job; prints the job id.")
    start.add_argument("dataset", metavar="DATASET", help="Name of a stored dataset (see `dataset list`).")
    start.add_argument("--model", required=True, metavar="BASE",
                       help="Base model to fine-tune, as provider:model or a model name (e.g. gpt-4o-mini).")
    start.add_argument("--split", default=DEFAULT_RATIOS, metavar="RATIOS",
                       help="train/validation(/test) ratios, e.g. 80/20 or 70/15/15; the test part is not uploaded "
                            f"(default {DEFAULT_RATIOS}).")
    start.add_argument("--seed", type=int, default=None,
                       help="Shuffle seed for the split, also sent as the job's seed.")
    start.add_argument("--epochs", type=int, default=None, help="Epochs (default: auto).")
    start.add_argument("--batch-size", type=int, default=None, help="Batch size (default: auto).")
    start.add_argument("--lr-multiplier", type=float, default=None, help="Learning-rate multiplier (default: auto).")
    start.add_argument("--suffix", default=None, help="Up to 64 characters put into the fine-tuned model's name.")
    start.set_defaults(finetune_handler=start_command)
    status = commands.add_parser("status", help="Ask the server about a job; prints its status and, once it has "
                                                "one, the fine-tuned model.")
    status.add_argument("job", metavar="JOB", help="The job id (ftjob-...).")
    status.set_defaults(finetune_handler=status_command)
    listing = commands.add_parser("list", help="Jobs started here, newest first (unfinished ones are refreshed).")
    listing.set_defaults(finetune_handler=list_command)
    cancel = commands.add_parser("cancel", help="Cancel a job that has not finished.")
    cancel.add_argument("job", metavar="JOB", help="The job id (ftjob-...).")
    cancel.set_defaults(finetune_handler=cancel_command)
    for command in (start, status, listing, cancel):
        command.add_argument("--home", type=Path, default=None,
                             help="Folder of the database (default $PLAYGROUND_HOME or ./.playground).")
        command.add_argument("--providers", type=Path, default=None,
                             help="Providers file of OpenAI-compatible endpoints (default HOME/providers.json).")
    return parser


def run(args) -> int:
    services = build_services(home=args.home, providers_file=args.providers, detect_local=False, discover=False)
    for problem in services.problems:
        print(f"warning: {problem}", file=sys.stderr)
    try:
        return args.finetune_handler(args, services)
    except NotReady as e:
        for finding in e.plan.errors:
            print(finding, file=sys.stderr)
        print(f"error: not started: fix the {plural(len(e.plan.errors), 'error')} above (`dataset validate "
              f"{e.plan.settings.dataset}` lists every finding).", file=sys.stderr)
        return 1
    except ProviderError as e:
        print(f"error: {e}", file=sys.stderr)
        if e.kind == "no_finetuning":
            print(export_advice(getattr(args, "dataset", None) or "NAME"), file=sys.stderr)
        return 1
    except PlaygroundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def start_command(args, services) -> int:
    settings = make_settings(dataset=args.dataset, model=args.model, split=args.split, seed=args.seed,
                                epochs=args.epochs, batch_size=args.batch_size,
                                learning_rate_multiplier=args.lr_multiplier, suffix=args.suffix)
    plan = finetune.prepare(services, settings)
    for line in plan.summary():
        print(line, file=sys.stderr)
    if not plan.ok:
        raise NotReady(plan)
    record = finetune.start(services, settings)
    print(record.id)
    return 0


def status_command(args, services) -> int:
    try:
        record = finetune.refresh(services, args.job)
    except ProviderError as e:
        record = get_job(services.store, args.job)
        print(f"warning: {e} Showing the status stored at {record.polled_at or record.created_at}.", file=sys.stderr)
    print(f"{record.id}: {record.status}")
    if record.fine_tuned_model:
        print(f"fine-tuned model: {record.fine_tuned_model}")
    if record.error:
        print(f"why: {record.error}")
    metrics = finetune.view(services, record.id).metrics
    if metrics:
        print(_metric_line(metrics[-1]))
    return 0


def list_command(args, services) -> int:
    for job_id, problem in finetune.refresh_active(services).items():
        print(f"warning: {job_id}: {problem}", file=sys.stderr)
    jobs = list_jobs(services.store)
    if not jobs:
        print("No fine-tuning jobs yet: `finetune start DATASET --model BASE` starts one.", file=sys.stderr)
    for record in jobs:
        print(_job_line(record))
    return 0


def cancel_command(args, services) -> int:
    record = finetune.cancel(services, args.job)
    print(f"{record.id}: {record.status}")
    return 0


def _job_line(record: JobRecord) -> str:
    made = record.fine_tuned_model or record.error or ""
    return f"{record.id}  {record.status:<16} {record.base_model:<24} {record.dataset or '-':<16} {made}".rstrip()


def _metric_line(point) -> str:
    parts = [f"step {point.step}"]
    for label, value in (("train loss", point.train_loss), ("validation loss", point.valid_loss),
                         ("train token accuracy", point.train_accuracy),
                         ("validation token accuracy", point.valid_accuracy)):
        if value is not None:
            parts.append(f"{label} {value:.4f}")
    return ", ".join(parts)
