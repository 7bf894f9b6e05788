"""Template and persona files, and every saved version of them in the store (table from migration m004_templates).

A file is named by its key, "templates/translate.json" or "personas/qa_facts.json": the folder decides the model
it must validate as. Saving validates first, then records the version with its diff and replaces the file
atomically in one transaction, so a bad template leaves both the file and the history as they were.
"""

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..chat.personas import Persona
from ..core.errors import FileProblem, PlaygroundError
from ..core.prompts import Template, read_text
from ..core.store import Database, Store, now
from .render import parse_template

MODELS: dict[str, type[Template]] = {"templates": Template, "personas": Persona}
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.json$")


class BadKey(PlaygroundError):
    pass


class TemplateExists(PlaygroundError):
    def __init__(self, key: str):
        super().__init__(f"{key} already exists: choose another name, or open it and Save.")


class VersionNotFound(PlaygroundError):
    def __init__(self, key: str, version: int):
        super().__init__(f"{key} has no saved version {version}.")


@dataclass(frozen=True)
class TemplateVersion:
    id: int
    key: str
    version: int
    content: str
    diff: str
    created_at: str

    def changed_lines(self) -> tuple[int, int]:
        """(lines added, lines removed) by this version."""
        lines = self.diff.splitlines()
        added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
        removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
        return added, removed


@dataclass(frozen=True)
class Saved:
    version: TemplateVersion
    changed: bool  # False when the content was the same as the latest version: nothing new was written


class TemplateFiles:
    """The folders templates and personas live in, by folder name."""

    def __init__(self, folders: dict[str, Path]):
        unknown = set(folders) - set(MODELS)
        if unknown:
            raise ValueError(f"unknown template folders: {sorted(unknown)}")
        self.folders = {name: Path(path) for name, path in folders.items()}

    def keys(self) -> list[str]:
        return [f"{name}/{path.name}" for name, folder in self.folders.items()
                for path in sorted(folder.glob("*.json")) if FILE_NAME.match(path.name)]

    def path(self, key: str) -> Path:
        folder, _, name = (key or "").partition("/")
        if folder not in self.folders:
            known = " or ".join(f"{f}/NAME.json" for f in self.folders)
            raise BadKey(f"'{key}' is not in a known folder: use {known}.")
        if not FILE_NAME.match(name):
            raise BadKey(f"'{name}' is not a usable file name: letters, digits, '.', '_' and '-', ending in .json.")
        return self.folders[folder] / name

    def model(self, key: str) -> type[Template]:
        self.path(key)
        return MODELS[key.partition("/")[0]]

    def read(self, key: str) -> str:
        return read_text(self.path(key))

    def load(self, key: str) -> Template:
        return self.check(key, self.read(key))

    def check(self, key: str, text: str) -> Template:
        """Validate text as the file `key` would hold it; raises FileProblem naming the key, line and field."""
        return parse_template(text, key, self.model(key))


def key_for(folder: str, name: str) -> str:
    name = name.strip()
    return f"{folder}/{name if name.endswith('.json') else name + '.json'}"


def canonical(text: str) -> str:
    """The JSON as it is written: fields in the user's order, two-space indent, non-ASCII kept readable."""
    return json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


# --- saving --------------------------------------------------------------------------------------------


def save(store: Store, files: TemplateFiles, key: str, text: str, *, new: bool = False) -> Saved:
    """Validate, record a version (with its diff) and write the file, all or nothing.

    A file changed on disk since its last recorded version (or never recorded, like a shipped example) is
    recorded first, so its earlier text can always be restored. `new` refuses to overwrite an existing file.
    """
    files.check(key, text)
    content = canonical(text)
    path = files.path(key)
    if new and path.exists():
        raise TemplateExists(key)
    with store.writing() as db:
        latest = _latest(db, key)
        on_disk = _readable(path)
        if on_disk is not None and (latest is None or latest.content != on_disk):
            latest = _insert(db, key, on_disk, latest)
        if latest is not None and latest.content == content and on_disk == content:
            return Saved(latest, changed=False)
        version = _insert(db, key, content, latest) if latest is None or latest.content != content else latest
        _write_atomically(path, content)
    return Saved(version, changed=True)


def restore(store: Store, files: TemplateFiles, key: str, version: int) -> Saved:
    """Make an earlier version current again: it is saved as the newest version, so the history stays whole."""
    return save(store, files, key, get_version(store, key, version).content)


def snapshot(store: Store, files: TemplateFiles, key: str) -> TemplateVersion:
    """The version matching the file as it is now, recording it first if needed: provenance for generated data."""
    return save(store, files, key, files.read(key)).version


def versions(store: Store, key: str) -> list[TemplateVersion]:
    """Newest first."""
    with store.db() as db:
        return [TemplateVersion(**row) for row in db.query(
            "select * from template_versions where key = ? order by version desc", [key])]


def get_version(store: Store, key: str, version: int) -> TemplateVersion:
    with store.db() as db:
        rows = list(db.query("select * from template_versions where key = ? and version = ?", [key, int(version)]))
    if not rows:
        raise VersionNotFound(key, version)
    return TemplateVersion(**rows[0])


def _latest(db: Database, key: str) -> TemplateVersion | None:
    rows = list(db.query("select * from template_versions where key = ? order by version desc limit 1", [key]))
    return TemplateVersion(**rows[0]) if rows else None


def _insert(db: Database, key: str, content: str, previous: TemplateVersion | None) -> TemplateVersion:
    number = previous.version + 1 if previous else 1
    before = previous.content if previous else ""
    diff = "".join(difflib.unified_diff(
        before.splitlines(keepends=True), content.splitlines(keepends=True),
        fromfile=f"{key} v{number - 1}" if previous else "/dev/null", tofile=f"{key} v{number}"))
    row: dict[str, Any] = {"key": key, "version": number, "content": content, "diff": diff, "created_at": now()}
    row_id = db.table("template_versions").insert(row).last_pk
    return TemplateVersion(id=row_id, **row)


def _readable(path: Path) -> str | None:
    try:
        return read_text(path)
    except FileProblem:
        return None  # missing, or not UTF-8: nothing that could be restored as text


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(content, encoding="utf-8")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
