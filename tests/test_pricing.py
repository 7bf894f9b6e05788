import json

import pytest

from playground.core.errors import FileProblem
from playground.core.pricing import DEFAULT_PRICES, Price, cost_usd, load_prices, price_for, save_prices


@pytest.mark.parametrize("model, expected", [
    ("gpt-4o", (2.50, 10.00)),
    ("gpt-4o-2024-08-06", (2.50, 10.00)),
    ("gpt-4o-mini", (0.15, 0.60)),                      # longest prefix, not gpt-4o
    ("gpt-4o-mini-2024-07-18", (0.15, 0.60)),
    ("gpt-4.1-mini-2025-04-14", (0.40, 1.60)),
    ("gpt-4.1-nano", (0.10, 0.40)),
    ("gpt-3.5-turbo-0125", (0.50, 1.50)),
    ("davinci-002", (2.00, 2.00)),
    ("ft:gpt-4o-mini-2024-07-18:acme::abc123", (0.30, 1.20)),   # fine-tunes cost more than their base
    ("ft:gpt-4o-2024-08-06:acme:bot:xyz", (3.75, 15.00)),
    ("ft:gpt-4.1-mini-2025-04-14:org::x", (0.80, 3.20)),
    ("ft:gpt-4.1-nano-2025-04-14:org::x", (0.20, 0.80)),
    ("ft:gpt-4.1-2025-04-14:org::x", (3.00, 12.00)),
    ("ft:gpt-3.5-turbo-0613:personal::7zuPTNEA", (3.00, 6.00)),
    ("ft:davinci-002:personal::abc", (12.00, 12.00)),
    ("lookup", (0.0, 0.0)),
])
def test_price_for(model, expected):
    price = price_for(model, DEFAULT_PRICES)
    assert (price.input, price.output) == expected


@pytest.mark.parametrize("model", ["llama3.2", "qwen2.5:7b", "ft:llama3:me::x", "gpt-5-unknown-to-the-table", "4o"])
def test_an_unknown_model_has_no_price_and_no_cost(model):
    assert price_for(model, DEFAULT_PRICES) is None
    assert cost_usd(model, 1000, 1000, DEFAULT_PRICES) is None


def test_cost_is_per_million_tokens():
    assert cost_usd("gpt-4o-mini", 1_000_000, 0, DEFAULT_PRICES) == pytest.approx(0.15)
    assert cost_usd("gpt-4o-mini", 2000, 500, DEFAULT_PRICES) == pytest.approx((2000 * 0.15 + 500 * 0.60) / 1e6)
    assert cost_usd("lookup", 5000, 5000, DEFAULT_PRICES) == 0


def test_a_local_price_for_an_open_model():
    table = {**DEFAULT_PRICES, "llama3": Price(input=0.05, output=0.10)}
    assert cost_usd("llama3.2:3b", 1_000_000, 1_000_000, table) == pytest.approx(0.15)


def test_load_prices_with_no_file_is_the_defaults(tmp_path):
    assert load_prices(tmp_path / "prices.json") == DEFAULT_PRICES


def test_load_prices_overlays_the_defaults(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"gpt-4o-mini": {"input": 0.1, "output": 0.2}, "llama3": {"input": 0, "output": 0}}))
    table = load_prices(path)
    assert table["gpt-4o-mini"] == Price(input=0.1, output=0.2)
    assert table["llama3"] == Price(input=0, output=0)
    assert table["gpt-4o"] == DEFAULT_PRICES["gpt-4o"]
    assert DEFAULT_PRICES["gpt-4o-mini"] == Price(input=0.15, output=0.60)  # the defaults are untouched


@pytest.mark.parametrize("content, field, line", [
    ('{"gpt-4o": {"input": 1.0, "output": 2.0},', None, 1),
    ('{\n  "gpt-4o": {"input": 1.0, "output": 2.0},\n  "llama3": {"input": -1, "output": 0}\n}', "llama3.input", 3),
    ('{\n  "gpt-4o": {"input": 1.0, "output": 2.0},\n  "llama3": {"input": 1}\n}', "llama3.output", 3),
    ('{\n  "gpt-4o": {"input": 1.0, "output": 2.0, "cached": 0.5}\n}', "gpt-4o.cached", 2),
    ('{"gpt-4o": "cheap"}', "gpt-4o", 1),
    ('[]', None, 1),
])
def test_a_broken_prices_file_names_itself(tmp_path, content, field, line):
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(FileProblem) as caught:
        load_prices(path)
    assert caught.value.path == str(path) and str(path) in str(caught.value)
    assert (caught.value.field, caught.value.line) == (field, line)


def test_a_non_utf8_prices_file_is_a_problem(tmp_path):
    path = tmp_path / "prices.json"
    path.write_bytes(b'{"caf\xe9": {"input": 1, "output": 1}}')
    with pytest.raises(FileProblem, match="UTF-8"):
        load_prices(path)


def test_save_prices_writes_only_changed_entries(tmp_path):
    path = tmp_path / "home" / "prices.json"
    table = {**DEFAULT_PRICES, "gpt-4o-mini": Price(input=0.1, output=0.2), "llama3": Price(input=0, output=0)}
    save_prices(path, table)
    assert json.loads(path.read_text()) == {"gpt-4o-mini": {"input": 0.1, "output": 0.2},
                                            "llama3": {"input": 0.0, "output": 0.0}}
    assert load_prices(path) == table
    assert not list(path.parent.glob("*.tmp"))


def test_saving_the_defaults_writes_an_empty_table(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"gpt-4o": {"input": 9, "output": 9}}))
    save_prices(path, dict(DEFAULT_PRICES))
    assert json.loads(path.read_text()) == {}
    assert load_prices(path) == DEFAULT_PRICES
