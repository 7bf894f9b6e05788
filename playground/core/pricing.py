"""Prices per million tokens, editable: defaults here, the user's overrides in a JSON file beside the database."""

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, RootModel

from .prompts import parse_model_file
from .tokens import base_model


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0, description="USD per 1M prompt tokens")
    output: float = Field(ge=0, description="USD per 1M completion tokens")


class PriceTable(RootModel[dict[str, Price]]):
    pass


# Standard (non-batch) API prices in USD per 1M tokens; fine-tuned models carry their own, higher rates.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(input=2.50, output=10.00),
    "gpt-4o-mini": Price(input=0.15, output=0.60),
    "gpt-4.1": Price(input=2.00, output=8.00),
    "gpt-4.1-mini": Price(input=0.40, output=1.60),
    "gpt-4.1-nano": Price(input=0.10, output=0.40),
    "gpt-3.5-turbo": Price(input=0.50, output=1.50),
    "davinci-002": Price(input=2.00, output=2.00),
    "babbage-002": Price(input=0.40, output=0.40),
    "ft:gpt-4o": Price(input=3.75, output=15.00),
    "ft:gpt-4o-mini": Price(input=0.30, output=1.20),
    "ft:gpt-4.1": Price(input=3.00, output=12.00),
    "ft:gpt-4.1-mini": Price(input=0.80, output=3.20),
    "ft:gpt-4.1-nano": Price(input=0.20, output=0.80),
    "ft:gpt-3.5-turbo": Price(input=3.00, output=6.00),
    "ft:davinci-002": Price(input=12.00, output=12.00),
    "ft:babbage-002": Price(input=1.60, output=1.60),
    "lookup": Price(input=0.0, output=0.0),
}


def price_for(model: str, table: dict[str, Price]) -> Price | None:
    """The longest table key that the model name (or, for a fine-tune, 'ft:' + its base) starts with."""
    name = ("ft:" + base_model(model)) if model.startswith("ft:") else model
    keys = [k for k in table if name.startswith(k)]
    return table[max(keys, key=len)] if keys else None


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int, table: dict[str, Price]) -> float | None:
    price = price_for(model, table)
    if price is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000


def load_prices(path: Path) -> dict[str, Price]:
    """Defaults overlaid with the user's file; a bad file is an error naming it, never silently ignored."""
    table = dict(DEFAULT_PRICES)
    if not path.exists():
        return table
    table.update(parse_model_file(path, PriceTable).root)
    return table


def save_prices(path: Path, table: dict[str, Price]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    changed = {k: v.model_dump() for k, v in table.items() if DEFAULT_PRICES.get(k) != v}
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(changed, indent=2), encoding="utf-8")
    partial.replace(path)
