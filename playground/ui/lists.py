"""Small translations every tab shows the same way: dataset choices, tables, timestamps."""

from ..chat.services import Services
from ..datasets.store import list_datasets


def dataset_names(services: Services) -> list[str]:
    """The datasets to pick from, in the store's order."""
    return [d.name for d in list_datasets(services.store)]


def shown_time(iso: str | None) -> str:
    """`2026-12-03T10:04:05.123+00:00` -> `2026-12-03 10:04:05`: to the second, as every table shows times."""
    return (iso or "")[:19].replace("T", " ")


def table_rows(value) -> list[list]:
    """A Dataframe's value as rows: Gradio sends a pandas DataFrame, a dict with "data", or a list."""
    if value is None:
        return []
    if hasattr(value, "values") and hasattr(value, "columns"):  # pandas
        return [list(row) for row in value.values.tolist()]
    if isinstance(value, dict):
        return [list(row) for row in value.get("data") or []]
    return [list(row) for row in value]


def filled_rows(rows: list[list]) -> list[list]:
    """Rows without the blank placeholder rows a table keeps so it is never shown empty."""
    return [row for row in rows if any(str(cell).strip() for cell in row if cell is not None)]


def snippet(text: str, length: int = 60) -> str:
    """One line of at most `length` characters: enough to recognise a message in a list."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= length else flat[:length - 1] + "…"
