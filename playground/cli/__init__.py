"""Command line: serve the app, list models, read the log."""

import argparse
import json
import os
import sys
from pathlib import Path

from ..chat.cards import import_card
from ..chat.personas import load_persona
from ..core.errors import PlaygroundError
from ..core.store import Store
from ..services import PROJECT_ROOT, build_services, home_dir
from .datasets import add_dataset_commands
from .datasets import run as run_dataset
from .eval import add_eval_command
from .eval import run as run_eval
from .finetune import add_finetune_commands
from .finetune import run as run_finetune
from .serve import add_launch_arguments, serve_app
from .templates import add_template_commands
from .templates import run as run_template


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1; 0.0.0.0 for all).")
    parser.add_argument("--port", type=int, default=7860, help="Port to listen on (default 7860).")
    _add_common(parser)
    add_launch_arguments(parser)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, default=None,
                        help="Folder for the database and settings (default $PLAYGROUND_HOME or ./.playground).")
    parser.add_argument("--providers", type=Path, default=None,
                        help="Providers file of OpenAI-compatible endpoints (default HOME/providers.json).")
    parser.add_argument("--no-detect", action="store_true",
                        help="Do not look for local servers (Ollama, llama.cpp, vLLM, LM Studio) on their default ports.")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m playground", description="Playground for fine-tuned language models.")
    commands = root.add_subparsers(dest="command", required=True)
    add_serve_arguments(commands.add_parser("serve", help="Run the web app (same as python app.py)."))
    models = commands.add_parser("models", help="List the models each reachable provider serves, one per line.")
    _add_common(models)
    models.add_argument("--json", action="store_true", help="Print {provider: [models]} as JSON.")
    logs = commands.add_parser("logs", help="Show recent exchanges from the log.")
    _add_common(logs)
    logs.add_argument("-n", "--count", type=int, default=10, help="How many (default 10).")
    logs.add_argument("--search", default="", help="Full-text search over requests and replies.")
    logs.add_argument("--json", action="store_true", help="Print JSON lines with every logged field.")
    persona = commands.add_parser("persona", help="Manage personas.")
    persona_commands = persona.add_subparsers(dest="persona_command", required=True)
    card = persona_commands.add_parser("import", help="Import a SillyTavern Character Card V2 (.json or .png) as a persona.")
    card.add_argument("file", type=Path, help="The card: a JSON file, or a PNG with the card embedded.")
    card.add_argument("--personas-dir", type=Path, default=None, help="Where to write it (default: the personas folder).")
    add_dataset_commands(commands)
    add_finetune_commands(commands)
    add_template_commands(commands)
    add_eval_command(commands)
    return root


def services_from(args, detect_local: bool | None = None, discover: bool = True):
    detect = not args.no_detect if detect_local is None else detect_local
    return build_services(home=args.home, providers_file=args.providers, detect_local=detect, discover=discover)


def serve(args) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    return serve_app(args, services_from)


def models(args) -> int:
    services = services_from(args, detect_local=False, discover=False)
    for problem in services.problems:
        print(f"warning: {problem}", file=sys.stderr)
    problems = services.registry.refresh()
    if not args.no_detect:
        services.registry.detect_local_servers()
    listed = services.registry.models()
    if args.json:
        print(json.dumps(listed, indent=2))
    else:
        for provider, names in listed.items():
            for name in names:
                print(f"{provider}:{name}")
    for provider, problem in problems.items():
        print(f"warning: {provider}: {problem}", file=sys.stderr)
    return 0


def logs(args) -> int:
    home = args.home or home_dir()
    if not (home / "playground.db").exists():
        print(f"No log yet at {home / 'playground.db'}: chat first.", file=sys.stderr)
        return 0
    rows = Store(home / "playground.db").exchanges(args.search, limit=args.count)
    for row in rows:
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            status = f"ERROR {row['error']}" if row["error"] else (row["reply"] or "").replace("\n", " ")[:100]
            print(f"{row['id']:>5}  {row['created_at'][:19]}  {row['model']:<24} "
                  f"{row['prompt_tokens'] or 0:>5}+{row['completion_tokens'] or 0:<5} {status}")
    return 0


def import_card_command(args) -> int:
    written = import_card(args.file, args.personas_dir or PROJECT_ROOT / "personas")
    print(f"{load_persona(written).name}: {written}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return {"serve": serve, "models": models, "logs": logs, "dataset": run_dataset,
                "persona": import_card_command, "template": run_template,
                "finetune": run_finetune, "eval": run_eval}[args.command](args)
    except PlaygroundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
