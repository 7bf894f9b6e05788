"""Export for a trainer: validate, optionally split, write; errors refuse the export, warnings do not.

`export_dataset` writes a stored dataset (the Datasets tab calls it; it does what `dataset export` does, returning
results instead of printing them). `export_file` converts a JSONL file of any size in one streaming pass: each
line is read, checked, counted and written once, and the output is kept only if the checks find no error.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import PlaygroundError
from ..core.store import Store
from .examples import DEFAULT_MODEL
from .formats import Unfit, UnfitExamples, check_format
from .formats.readers import parse_lines
from .formats.writers import unfit_examples, write_examples
from .splits import split_examples
from .stats import DatasetStats
from .store import iter_examples
from .validation import Checker, Finding, has_errors, validate_examples, validate_splits


class ExportRefused(PlaygroundError):
    """Validation found errors; nothing was written."""

    def __init__(self, errors: list[Finding], what: str):
        self.errors = errors
        super().__init__(f"Not exported: {len(errors)} error{'s' if len(errors) != 1 else ''} in the {what} "
                         "(listed below); fix them first. Warnings do not block an export.")


@dataclass(frozen=True)
class ExportResult:
    files: dict[Path, int]  # file written -> examples in it
    warnings: list[Finding] = field(default_factory=list)
    left_out: list[Unfit] = field(default_factory=list)  # examples the format cannot hold (with skip_unfit)


def file_stem(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "dataset"


def export_dataset(store: Store, name: str, format: str, out_dir: Path, *, ratios: str | None = None, seed: int = 0,
                   model: str = DEFAULT_MODEL, deploy_prompt: str | None = None,
                   skip_unfit: bool = False) -> ExportResult:
    """Write the dataset's included examples as `NAME.jsonl`, or split into train/validation(/test).jsonl."""
    check_format(format)
    examples = list(iter_examples(store, name, include_excluded=False))
    findings = validate_examples(examples, model, deploy_prompt)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise ExportRefused(errors, "dataset")
    unfit = unfit_examples(examples, format)
    if unfit and not skip_unfit:
        raise UnfitExamples(unfit)
    left_out = {id(u.example) for u in unfit}
    examples = [e for e in examples if id(e) not in left_out]
    if ratios and ratios.strip():
        parts = split_examples(examples, ratios, seed)
        errors = [f for f in validate_splits(parts) if f.severity == "error"]
        if errors:
            raise ExportRefused(errors, "split")
    else:
        parts = {file_stem(name): examples}
    out_dir = Path(out_dir)
    files = {}
    for part, part_examples in parts.items():
        path = out_dir / f"{part}.jsonl"
        write_examples(part_examples, path, format)
        files[path] = len(part_examples)
    return ExportResult(files, findings, unfit)


@dataclass(frozen=True)
class FileExport:
    written: int
    findings: list[Finding]  # with errors, nothing was written
    stats: DatasetStats
    left_out: list[Unfit] = field(default_factory=list)


def export_file(source: Path, out: Path, format: str, *, model: str = DEFAULT_MODEL, deploy_prompt: str | None = None,
                read_format: str | None = None, skip_unfit: bool = False) -> FileExport:
    """Validate, count the tokens of, and convert a JSONL file in one pass; `out` is written only if there is no error.

    Memory stays flat: examples are checked and written as they are read (see validation.Checker).
    """
    checker = Checker(model, deploy_prompt)
    examples = (parsed.example for parsed in checker.read(parse_lines(source, read_format)) if parsed.example is not None)
    out = Path(out)
    staging = out.with_name(f".{out.name}.{os.getpid()}.unchecked")
    try:
        written, unfit = write_examples(examples, staging, format, skip_unfit=True)
        findings = checker.finish(checker.file_fetch(source, read_format), at_lines=True)
        if has_errors(findings) or (unfit and not skip_unfit):
            written = 0
        else:
            staging.replace(out)
    finally:
        staging.unlink(missing_ok=True)
    if unfit and not skip_unfit and not has_errors(findings):
        raise UnfitExamples(unfit)
    return FileExport(written, findings, checker.stats(), unfit)
