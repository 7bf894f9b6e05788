"""Pure translations between templates and what the Templates tab shows: tables, the preview, the token line."""

import html
import re

from ..core.errors import PlaygroundError
from ..core.messages import Message
from ..core.plural import plural
from ..core.prompts import Template
from ..templates.render import Preview
from ..templates.store import TemplateVersion

ROLES = ("system", "user", "assistant")


def table_rows(value) -> list[list]:
    """A Dataframe's value as rows, whether it arrives as a list, a pandas frame or an API payload."""
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value.get("data") or [])
    if hasattr(value, "values"):
        return value.values.tolist()
    return [list(row) for row in value]


def _cell(row: list, i: int) -> str:
    return "" if len(row) <= i or row[i] is None else str(row[i])


def message_rows(messages: list[Message]) -> list[list[str]]:
    return [[m.role, m.content] for m in messages]


def messages_from_rows(value) -> list[Message]:
    """The messages table as messages; blank rows are left out, a role that is not one is an error naming its row."""
    messages = []
    for number, row in enumerate(table_rows(value), 1):
        role, content = _cell(row, 0).strip().lower(), _cell(row, 1)
        if not role and not content.strip():
            continue
        if role not in ROLES:
            raise PlaygroundError(f"Messages row {number}: '{_cell(row, 0).strip()}' is not a role: "
                                  "use system, user or assistant.")
        messages.append(Message(role=role, content=content))
    return messages


def entered_values(value) -> dict[str, str]:
    return {_cell(row, 0).strip(): _cell(row, 1) for row in table_rows(value) if _cell(row, 0).strip()}


def variable_rows(template: Template, entered: dict[str, str]) -> list[list[str]]:
    """One row per variable the messages use: the value entered, else the template's default."""
    names = template.variable_names()
    return [[n, entered[n] if n in entered else template.variables.get(n, "")] for n in names] or [["", ""]]


PREVIEW_CSS = """
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0 14px; padding: 8px 10px; border-radius: 6px;
      background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary);
      font-family: var(--font-mono); font-size: 13px; line-height: 1.45; }
.head { font-size: 14px; color: var(--body-text-color); }
.tokens { color: var(--body-text-color-subdued); }
mark { background: #fde68a; color: #111; border-radius: 3px; padding: 0 2px; }
"""


def _shown(text: str, missing: list[str]) -> str:
    """Text escaped for HTML, with the variables still unfilled marked."""
    escaped = html.escape(text)
    for name in missing:
        escaped = re.sub(r"\{\{\s*" + re.escape(name) + r"\s*\}\}", lambda m: f"<mark>{m.group(0)}</mark>", escaped)
    return escaped


def preview_html(shown: Preview) -> str:
    """What is sent, verbatim: each message with its tokens, or the prompt text for a completion model."""
    if shown.prompt is not None:
        parts = " · ".join(f"{m.role} {n}" for m, n in zip(shown.messages, shown.tokens))
        return (f'<div class="head"><b>Prompt text</b> for /v1/completions <span class="tokens">· '
                f'{plural(shown.total, "token")}</span></div><pre>{_shown(shown.prompt, shown.missing)}</pre>'
                f'<div class="tokens">tokens per part: {parts}</div>')
    return "".join(f'<div class="head"><b>{i} · {m.role}</b> <span class="tokens">· {plural(n, "token")}</span></div>'
                   f'<pre>{_shown(m.content, shown.missing)}</pre>'
                   for i, (m, n) in enumerate(zip(shown.messages, shown.tokens), 1))


def summary_markdown(shown: Preview) -> str:
    line = f"**{shown.summary()}**"
    if not shown.exact:
        line += f"\n\n<sub>~ {shown.model} has its own tokenizer: counted with a close stand-in.</sub>"
    if shown.missing:
        listed = ", ".join("{{" + n + "}}" for n in shown.missing)
        line += f"\n\n⚠️ Fill in {listed} in Variables before running."
    return line


def version_rows(found: list[TemplateVersion]) -> list[list]:
    rows = []
    for v in found:
        added, removed = v.changed_lines()
        rows.append([v.version, v.created_at[:19].replace("T", " "), f"+{added} −{removed}"])
    return rows or [["", "", ""]]
