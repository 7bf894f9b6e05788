"""Datasets and their examples in the SQLite store (tables from migration m002_datasets).

Every function takes the Store and opens its own connection, as the store does: Gradio handlers run in
worker threads and a connection must not cross them. Deleting an example only marks it, so it can be undone.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..core.store import Database, Store
from .examples import DEFAULT_MODEL, Dataset, Example, now
from .formats import BadLines, LineProblem
from .formats.readers import parse_lines
from .stats import example_tokens

BATCH_SIZE = 500  # rows held in memory at once while importing
TOKENS_MODEL = DEFAULT_MODEL  # whose count the `tokens` column keeps, for list totals
MAX_NAME_LENGTH = 100
EXAMPLE_COLUMNS = ("dataset_id", "messages", "chosen", "rejected", "tags", "excluded", "source", "tokens",
                   "created_at", "updated_at", "deleted_at")
_INSERT = f"insert into examples ({', '.join(EXAMPLE_COLUMNS)}) values ({', '.join('?' * len(EXAMPLE_COLUMNS))})"
_SUMMARY = """
select d.id, d.name, d.description, d.created_at,
       coalesce(sum(e.excluded = 0), 0) as examples,
       coalesce(sum(e.excluded = 1), 0) as excluded,
       coalesce(sum(case when e.excluded = 0 then e.tokens end), 0) as tokens
from datasets d left join examples e on e.dataset_id = d.id and e.deleted_at is null
"""


class DatasetNotFound(PlaygroundError):
    def __init__(self, name: str):
        super().__init__(f"There is no dataset named '{name}': import one or check the name.")


class DatasetExists(PlaygroundError):
    def __init__(self, name: str):
        super().__init__(f"A dataset named '{name}' already exists: choose another name.")


class InvalidName(PlaygroundError):
    pass


class ExampleNotFound(PlaygroundError):
    def __init__(self, example_id: int):
        super().__init__(f"There is no example {example_id}: it may have been deleted.")


class InvalidExample(PlaygroundError):
    def __init__(self, example_id: int | None, problem: str):
        super().__init__(f"Example {example_id} was not changed: {problem}")


class NothingToImport(PlaygroundError):
    def __init__(self, path):
        super().__init__(f"{path}: there are no examples in it to import.")


@dataclass(frozen=True)
class DatasetInfo:
    id: int
    name: str
    description: str
    created_at: str
    examples: int = 0  # included, not deleted
    excluded: int = 0
    tokens: int = 0  # of the included examples, counted for TOKENS_MODEL


@dataclass(frozen=True)
class ImportReport:
    dataset: str
    imported: int
    formats: dict[str, int] = field(default_factory=dict)
    skipped: list[LineProblem] = field(default_factory=list)


@dataclass(frozen=True)
class AddReport:
    """What an add did: the new examples' ids, and how many were left out because the dataset already held them."""

    dataset: str
    added: list[int]
    already: int = 0

    def summary(self, where: str | None = None) -> str:
        """'Added 2 examples to 'qa'; 1 example already in the dataset', or 'Nothing added to 'qa': it is already
        in the dataset'; `where` is the dataset as the caller shows it. No full stop, so callers can go on."""
        where = where or f"'{self.dataset}'"
        if not self.added:
            held = "it is" if self.already == 1 else f"all {self.already} are"
            return f"Nothing added to {where}: {held} already in the dataset"
        already = f"; {plural(self.already, 'example')} already in the dataset" if self.already else ""
        return f"Added {plural(len(self.added), 'example')} to {where}{already}"


# --- datasets ------------------------------------------------------------------------------------------


def create_dataset(store: Store, name: str, description: str = "") -> DatasetInfo:
    with store.writing() as db:
        _create(db, name, description)
    return get_dataset(store, name.strip())


def get_dataset(store: Store, name: str) -> DatasetInfo:
    with store.db() as db:
        rows = list(db.query(_SUMMARY + " where d.name = ? group by d.id", [name]))
    if not rows:
        raise DatasetNotFound(name)
    return DatasetInfo(**rows[0])


def list_datasets(store: Store) -> list[DatasetInfo]:
    """Every dataset by name, with its example counts and token total."""
    with store.db() as db:
        return [DatasetInfo(**row) for row in db.query(_SUMMARY + " group by d.id order by d.name")]


def rename_dataset(store: Store, name: str, new_name: str) -> DatasetInfo:
    with store.writing() as db:
        dataset_id = _dataset_id(db, name)
        new_name = _valid_name(new_name)
        if new_name != name and db.table("datasets").count_where("name = ?", [new_name]):
            raise DatasetExists(new_name)
        db.table("datasets").update(dataset_id, {"name": new_name})
    return get_dataset(store, new_name)


def delete_dataset(store: Store, name: str) -> int:
    """Remove a dataset and all its examples for good; returns how many examples went with it."""
    with store.writing() as db:
        dataset_id = _dataset_id(db, name)
        removed = db.execute("delete from examples where dataset_id = ?", [dataset_id]).rowcount
        db.table("datasets").delete(dataset_id)
    return removed


def load_dataset(store: Store, name: str, include_excluded: bool = True) -> Dataset:
    info = get_dataset(store, name)
    return Dataset(name=info.name, description=info.description,
                   examples=list(iter_examples(store, name, include_excluded=include_excluded)))


# --- examples ------------------------------------------------------------------------------------------


def add_examples(store: Store, name: str, examples: Iterable[Example]) -> list[int]:
    """Add examples in one transaction (all or none); returns their new ids. An example's own id is ignored."""
    with store.writing() as db:
        dataset_id = _dataset_id(db, name)
        timestamp = now()
        return [db.execute(_INSERT, _row(dataset_id, e, timestamp)).lastrowid for e in examples]


def add_new_examples(store: Store, name: str, examples: Iterable[Example]) -> AddReport:
    """Add the examples the dataset does not already hold, in one transaction; the rule for every "Add" button.

    Two examples are the same when their content is (content_key: messages, chosen, rejected), whatever their ids,
    tags, sources or times; excluded examples count as held, deleted ones do not. A copy within `examples` is
    added once.
    """
    with store.writing() as db:
        dataset_id = _dataset_id(db, name)
        held = {content_key(json.loads(row["messages"]), row["chosen"], row["rejected"]) for row in db.query(
            "select messages, chosen, rejected from examples where dataset_id = ? and deleted_at is null", [dataset_id])}
        timestamp, added, already = now(), [], 0
        for example in examples:
            key = example_key(example)
            if key in held:
                already += 1
                continue
            held.add(key)
            added.append(db.execute(_INSERT, _row(dataset_id, example, timestamp)).lastrowid)
    return AddReport(name, added, already)


def content_key(messages: list[dict], chosen: str | None, rejected: str | None) -> str:
    """What makes two examples the same example: each message's role, text and weight, and the preference pair."""
    turns = [(m["role"], m["content"], m.get("weight")) for m in messages]
    return json.dumps([turns, chosen, rejected], ensure_ascii=False)


def example_key(example: Example) -> str:
    return content_key([m.model_dump() for m in example.messages], example.chosen, example.rejected)


def iter_examples(store: Store, name: str, include_excluded: bool = True) -> Iterator[Example]:
    """The dataset's examples in the order they were added, read from the database as they are consumed."""
    with store.db() as db:
        dataset_id = _dataset_id(db, name)
        where = "dataset_id = ? and deleted_at is null" + ("" if include_excluded else " and excluded = 0")
        for row in db.query(f"select * from examples where {where} order by id", [dataset_id]):
            yield _example(row)


def get_example(store: Store, example_id: int) -> Example:
    with store.db() as db:
        return _get(db, example_id)


def update_example(store: Store, example_id: int, **changes) -> Example:
    """Change an example's messages, chosen/rejected, tags or excluded flag; the result is validated as a whole."""
    fixed = {"id", "created_at"} & changes.keys()
    if fixed:
        raise InvalidExample(example_id, f"{', '.join(sorted(fixed))} cannot be changed.")
    if "messages" in changes:
        changes["messages"] = [m.model_dump() if isinstance(m, BaseModel) else m for m in changes["messages"]]
    with store.writing() as db:
        current = _get(db, example_id)
        try:
            updated = Example.model_validate({**current.model_dump(), **changes})
        except ValidationError as e:
            error = e.errors()[0]
            where = ".".join(f"#{p + 1}" if isinstance(p, int) else str(p) for p in error["loc"])
            raise InvalidExample(example_id, f"{where + ': ' if where else ''}{error['msg']}".removesuffix(".")
                                 .replace("Value error, ", "") + ".") from None
        row = _row(_dataset_id_of(db, example_id), updated, now())
        db.table("examples").update(example_id, {k: v for k, v in zip(EXAMPLE_COLUMNS, row)
                                           if k not in ("dataset_id", "created_at", "deleted_at")})
    return updated


def delete_examples(store: Store, ids: Iterable[int]) -> list[int]:
    """Mark examples deleted; returns the ids actually deleted, which undo_delete takes back."""
    ids = list(ids)
    with store.writing() as db:
        deleted = [i for i in ids if db.table("examples").count_where("id = ? and deleted_at is null", [i])]
        stamp = now()
        for i in deleted:
            db.execute("update examples set deleted_at = ? where id = ?", [stamp, i])
    return deleted


def undo_delete(store: Store, ids: Iterable[int]) -> int:
    with store.writing() as db:
        return sum(db.execute("update examples set deleted_at = null where id = ? and deleted_at is not null",
                              [i]).rowcount for i in ids)


# --- import --------------------------------------------------------------------------------------------


def import_file(store: Store, path: Path, name: str, *, format: str | None = None, skip_bad: bool = False,
                description: str = "") -> ImportReport:
    """Create a dataset from a JSONL file, streaming it in one transaction.

    Every bad line is reported; unless skip_bad, any bad line means nothing is imported, not even the dataset.
    """
    problems: list[LineProblem] = []
    formats: dict[str, int] = {}
    imported = 0
    with store.writing() as db:
        dataset_id = _create(db, name, description)
        timestamp, batch = now(), []
        for parsed in parse_lines(path, format):
            problems.extend(parsed.problems)
            # After a bad line, without skip_bad, the rest is only read to report every problem.
            if parsed.example is None or (problems and not skip_bad):
                continue
            batch.append(_row(dataset_id, parsed.example, timestamp))
            formats[parsed.format] = formats.get(parsed.format, 0) + 1
            if len(batch) >= BATCH_SIZE:
                imported += _insert_batch(db, batch)
        if problems and not skip_bad:
            raise BadLines(path, problems)
        imported += _insert_batch(db, batch)
        if not imported:
            raise BadLines(path, problems) if problems else NothingToImport(path)
    return ImportReport(name.strip(), imported, formats, problems)


# --- rows ----------------------------------------------------------------------------------------------


def _insert_batch(db: Database, batch: list[tuple]) -> int:
    db.conn.executemany(_INSERT, batch)
    count = len(batch)
    batch.clear()
    return count


def _valid_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidName(f"A dataset name is 1 to {MAX_NAME_LENGTH} printable characters, on one line: '{name}' is not.")
    return name


def _create(db: Database, name: str, description: str) -> int:
    name = _valid_name(name)
    if db.table("datasets").count_where("name = ?", [name]):
        raise DatasetExists(name)
    return db.execute("insert into datasets (name, description, created_at) values (?, ?, ?)",
                      [name, description, now()]).lastrowid


def _dataset_id(db: Database, name: str) -> int:
    rows = list(db.query("select id from datasets where name = ?", [name]))
    if not rows:
        raise DatasetNotFound(name)
    return rows[0]["id"]


def _dataset_id_of(db: Database, example_id: int) -> int:
    return next(db.query("select dataset_id from examples where id = ?", [example_id]))["dataset_id"]


def _get(db: Database, example_id: int) -> Example:
    rows = list(db.query("select * from examples where id = ? and deleted_at is null", [example_id]))
    if not rows:
        raise ExampleNotFound(example_id)
    return _example(rows[0])


def _row(dataset_id: int, example: Example, timestamp: str) -> tuple:
    messages = [m.model_dump(exclude_none=True) for m in example.messages]
    return (
        dataset_id, json.dumps(messages, ensure_ascii=False), example.chosen, example.rejected,
        json.dumps(example.tags, ensure_ascii=False), int(example.excluded),
        example.source.model_dump_json(exclude_defaults=True), example_tokens(example, TOKENS_MODEL),
        example.created_at, timestamp, None,
    )


def _example(row: dict) -> Example:
    return Example(
        id=row["id"], messages=json.loads(row["messages"]), chosen=row["chosen"], rejected=row["rejected"],
        tags=json.loads(row["tags"]), excluded=bool(row["excluded"]), source=json.loads(row["source"]),
        created_at=row["created_at"],
    )
