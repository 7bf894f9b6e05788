"""Where a batch comparison's rows come from, and where its results go.

Rows come from a prompt-set JSONL file (promptset.py) or from a stored dataset's split: each example's
conversation up to its last assistant turn is the prompt, that reply is what is expected (a preference
example expects its chosen reply). The results file is named after the rows and the columns' setups, so
running the same comparison again resumes it instead of paying for finished rows twice.
"""

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import PlaygroundError
from ..core.messages import Message
from ..core.store import Store
from ..datasets.examples import Example
from ..datasets.splits import DEFAULT_RATIOS, split_examples
from ..datasets.store import load_dataset
from .batch import ColumnConfig
from .checks import Check
from .promptset import PromptRow, PromptSet, load_prompt_set

BATCHES_DIR = "batches"


class NothingToRun(PlaygroundError):
    pass


def example_row(example: Example, check: Check | None = None) -> PromptRow | None:
    """The example as a prompt row; None when it has no reply to expect after a user turn."""
    messages = [Message(role=m.role, content=m.content) for m in example.messages]
    if example.is_preference:
        prompt, expected = messages, example.chosen
    else:
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=None)
        if last is None:
            return None
        prompt, expected = messages[:last], messages[last].content
    if not any(m.role == "user" for m in prompt):
        return None
    row = PromptRow(id=f"example-{example.id}", messages=prompt, expected=expected)
    if check is not None:
        # Set after validation: a reply the check cannot use (not JSON, say) is reported on its row, not fatal.
        row.check = check
    return row


def rows_from_examples(examples: Sequence[Example], check: Check | None = None) -> list[PromptRow]:
    return [row for row in (example_row(e, check) for e in examples) if row is not None]


def dataset_split_rows(store: Store, dataset: str, split: str = "validation", ratios: str = DEFAULT_RATIOS,
                       seed: int = 0, check: Check | None = None) -> list[PromptRow]:
    """Rows from one split of a stored dataset, cut as the Datasets tab cuts it (same ratios and seed)."""
    if not (dataset or "").strip():
        raise NothingToRun("Pick a dataset first.")
    parts = split_examples(load_dataset(store, dataset).examples, ratios, seed)
    if split not in parts:
        raise NothingToRun(f"The split {ratios} has no '{split}' part: it has {', '.join(parts)}.")
    rows = rows_from_examples(parts[split], check)
    if not rows:
        raise NothingToRun(f"The {split} split of '{dataset}' ({ratios}) has no example with a reply to compare.")
    return rows


def prompt_set_rows(path: Path, skip_bad: bool = False) -> PromptSet:
    prompt_set = load_prompt_set(path, skip_bad)
    if not prompt_set.rows:
        raise NothingToRun(f"{path}: there are no prompts in it to run.")
    return prompt_set


def results_path(home: Path, source: str, rows: Sequence[PromptRow], columns: Sequence[ColumnConfig]) -> Path:
    """home/batches/<source>-<digest of the rows and the column setups>.jsonl: the same comparison, the same file."""
    content = json.dumps({"rows": [r.model_dump(mode="json") for r in rows],
                          "columns": [[c.label, c.fingerprint()] for c in columns]}, sort_keys=True)
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in Path(source).stem)[:40] or "batch"
    return Path(home) / BATCHES_DIR / f"{stem}-{hashlib.sha1(content.encode()).hexdigest()[:12]}.jsonl"
