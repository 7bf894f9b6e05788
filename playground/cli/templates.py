"""`python -m playground template render FILE [-v NAME=VALUE ...] [--model MODEL]`.

Prints exactly what the template sends: the filled messages as JSON (or, for a completion template, the prompt
text) on stdout, and the token count and cost on stderr, so the output can be piped. Exits 1 naming any unfilled
variable or bad field.
"""

import argparse
import json
import sys
from pathlib import Path

from ..chat.personas import Persona
from ..core.errors import PlaygroundError
from ..core.pricing import load_prices
from ..core.prompts import Template, loads, read_text
from ..datasets.examples import DEFAULT_MODEL
from ..services import home_dir
from ..templates.render import parse_template, preview, values_for


def add_template_commands(subparsers) -> argparse.ArgumentParser:
    """Add `template` and its subcommands to a root parser's subparsers."""
    template = subparsers.add_parser("template", help="Render prompt templates (the JSON files in templates/).")
    commands = template.add_subparsers(dest="template_command", required=True, metavar="COMMAND")
    render = commands.add_parser("render", help="Print the messages a template sends, with their token count.")
    render.add_argument("file", type=Path, help="A template or persona JSON file.")
    render.add_argument("-v", "--var", dest="values", action="append", default=[], type=_assignment,
                        metavar="NAME=VALUE", help="A value for {{NAME}}; repeat for each variable.")
    render.add_argument("--model", default=None,
                        help="Count tokens and cost for this model (default: the template's model, else "
                             f"{DEFAULT_MODEL}).")
    render.add_argument("--home", type=Path, default=None,
                        help="Folder with your prices.json (default $PLAYGROUND_HOME or ./.playground).")
    render.set_defaults(template_handler=render_command)
    return template


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME=VALUE")
    return name.strip(), value


def run(args) -> int:
    try:
        return args.template_handler(args)
    except PlaygroundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def render_command(args) -> int:
    text = read_text(args.file)
    template = parse_template(text, args.file, _model_for(args.file, text))
    values = values_for(template, dict(args.values))
    model = args.model or template.model or DEFAULT_MODEL
    shown = preview(template, values, model, load_prices(Path(args.home or home_dir()) / "prices.json"))
    if shown.missing:
        listed = ", ".join("{{" + n + "}}" for n in shown.missing)
        options = " ".join(f"-v {n}=VALUE" for n in shown.missing)
        plural = "s" if len(shown.missing) > 1 else ""
        raise PlaygroundError(f"{args.file}: no value for the variable{plural} {listed}: pass {options}.")
    if shown.prompt is not None:
        print(shown.prompt)
    else:
        print(json.dumps([m.model_dump() for m in shown.messages], indent=2, ensure_ascii=False))
    print(shown.summary(), file=sys.stderr)
    return 0


def _model_for(path: Path, text: str) -> type[Template]:
    """Persona files (in personas/, or with persona fields) are parsed as personas, the rest as templates."""
    if path.resolve().parent.name == "personas":
        return Persona
    try:
        data = loads(text)
    except ValueError:  # bad JSON, or nested too deeply:
        return Template  # parsing it again reports the line and column
    persona_only = set(Persona.model_fields) - set(Template.model_fields)
    return Persona if isinstance(data, dict) and persona_only & set(data) else Template
