import pytest

from playground.datasets.examples import Example, TrainingMessage
from playground.datasets.formats.writers import write_examples
from playground.datasets.splits import EmptySplit, InvalidRatios, parse_ratios, split_examples, split_sizes
from playground.datasets.stats import (
    TRAINING_PRICES,
    billed_tokens,
    context_limit,
    dataset_stats,
    default_epochs,
    example_tokens,
    training_costs,
    training_price,
)
from playground.datasets.validation import validate_splits


def chat(user: str, answer: str, id: int | None = None, excluded: bool = False) -> Example:
    return Example(id=id, excluded=excluded, messages=[
        TrainingMessage(role="system", content="Answer in a few words."),
        TrainingMessage(role="user", content=user), TrainingMessage(role="assistant", content=answer)])


def dataset(n: int) -> list[Example]:
    return [chat(f"Question {i} about plot {i * 13}?", f"Answer {i}.", id=i) for i in range(1, n + 1)]


def ids(examples: list[Example]) -> list[int]:
    return [e.id for e in examples]


# ---------------------------------------------------------------- ratios

@pytest.mark.parametrize("given,expected", [
    ("80/20", (0.8, 0.2)),
    ("60/20/20", (0.6, 0.2, 0.2)),
    ("3:1", (0.75, 0.25)),
    ([0.9, 0.1], (0.9, 0.1)),
    ([6, 2, 2], (0.6, 0.2, 0.2)),
])
def test_parse_ratios(given, expected):
    assert parse_ratios(given) == pytest.approx(expected)


@pytest.mark.parametrize("given", ["80", "80/20/10/10", "80/-20", "eighty/twenty", "80/0", [1.0]])
def test_a_split_that_makes_no_sense_is_refused(given):
    with pytest.raises(InvalidRatios):
        parse_ratios(given)


@pytest.mark.parametrize("n,fractions,sizes", [
    (10, (0.8, 0.2), [8, 2]),
    (100, (0.6, 0.2, 0.2), [60, 20, 20]),
    (7, (0.6, 0.2, 0.2), [4, 2, 1]),  # 4.2, 1.4, 1.4: the spare one goes to the first largest remainder
    (3, (0.8, 0.1, 0.1), [1, 1, 1]),
    (1, (0.8, 0.2), [1, 0]),
    (0, (0.8, 0.2), [0, 0]),
])
def test_split_sizes_add_up_and_no_split_is_empty_when_avoidable(n, fractions, sizes):
    assert split_sizes(n, fractions) == sizes


# ---------------------------------------------------------------- splits

@pytest.mark.parametrize("ratios,names", [("80/20", ["train", "validation"]), ("60/20/20", ["train", "validation", "test"])])
def test_every_example_lands_in_exactly_one_split(ratios, names):
    examples = dataset(50)
    splits = split_examples(examples, ratios, seed=7)
    assert list(splits) == names
    placed = [i for part in splits.values() for i in ids(part)]
    assert sorted(placed) == ids(examples)
    assert [len(part) for part in splits.values()] == split_sizes(50, parse_ratios(ratios))
    assert validate_splits(splits) == []


def test_excluded_examples_are_left_out_of_every_split():
    examples = dataset(20) + [chat("Left out?", "Yes.", id=99, excluded=True)]
    splits = split_examples(examples, "60/20/20")
    assert 99 not in [i for part in splits.values() for i in ids(part)]
    assert sum(len(p) for p in splits.values()) == 20


def test_the_same_seed_gives_byte_identical_files_and_another_seed_another_order(tmp_path):
    def export(seed: int, folder: str) -> dict[str, bytes]:
        out = {}
        for name, part in split_examples(dataset(40), "60/20/20", seed=seed).items():
            write_examples(part, tmp_path / folder / f"{name}.jsonl", "openai-chat")
            out[name] = (tmp_path / folder / f"{name}.jsonl").read_bytes()
        return out

    assert export(7, "a") == export(7, "b")
    assert export(7, "a")["train"] != export(8, "c")["train"]


def test_a_different_seed_shuffles_differently():
    first = split_examples(dataset(40), "80/20", seed=1)["train"]
    second = split_examples(dataset(40), "80/20", seed=2)["train"]
    assert ids(first) != ids(second)
    assert ids(first) != sorted(ids(first))


def test_copies_and_near_copies_stay_in_the_same_split():
    examples = dataset(30)
    examples += [chat("Question 3 about plot 39?", "Answer 3.", id=101),  # exact copy of 3
                 chat("QUESTION 5 about plot 65", "A different answer.", id=102)]  # same question as 5
    for seed in range(10):
        splits = split_examples(examples, "60/20/20", seed=seed)
        where = {i: name for name, part in splits.items() for i in ids(part)}
        assert where[3] == where[101] and where[5] == where[102]
        assert validate_splits(splits) == []


def test_a_split_that_would_leave_a_part_empty_is_refused_and_says_what_to_do():
    # Six answers to one question are near-copies: they move as one group, so nothing is left for validation or test.
    examples = [chat("Where does the ferry leave from?", f"From pier {i}.", id=i) for i in range(1, 7)]
    with pytest.raises(EmptySplit) as refused:
        split_examples(examples, "60/20/20")
    message = str(refused.value)
    assert "60/20/20 split of 6 examples" in message
    assert "validation part and the test part empty" in message
    assert "1 group" in message and "different ratio" in message and "fewer parts" in message


def test_too_few_examples_for_three_parts_is_refused():
    with pytest.raises(EmptySplit, match="test part empty"):
        split_examples(dataset(2), "60/20/20")
    assert [len(p) for p in split_examples(dataset(2), "50/50").values()] == [1, 1]


# ---------------------------------------------------------------- epochs, tokens, cost

@pytest.mark.parametrize("n,epochs", [
    (1, 25), (3, 25), (4, 25), (5, 20), (10, 10), (33, 3), (34, 3), (100, 3), (8333, 3), (8334, 2), (25000, 1),
    (100000, 1), (0, 3),
])
def test_default_epochs_follow_openais_rule(n, epochs):
    assert default_epochs(n) == epochs


@pytest.mark.parametrize("model,limit", [
    ("gpt-4o-mini-2024-07-18", 65_536), ("gpt-4o", 65_536), ("gpt-4.1-mini", 65_536), ("gpt-4.1-nano", 65_536),
    ("gpt-3.5-turbo-0125", 16_385), ("gpt-3.5-turbo-1106", 16_385), ("gpt-3.5-turbo-0613", 4_096),
    ("ft:gpt-3.5-turbo-0613:personal::7zuPTNEA", 4_096), ("llama3.2", 65_536),
])
def test_context_limit(model, limit):
    assert context_limit(model) == limit


def test_billed_tokens_cut_each_example_at_the_limit_then_multiply_by_epochs():
    assert billed_tokens([100, 5000, 300], limit=4096, epochs=3) == (100 + 4096 + 300) * 3


@pytest.mark.parametrize("model,usd", [("gpt-4o-mini", 0.90), ("gpt-3.5-turbo", 2.40), ("gpt-4o", 7.50)])
def test_the_guides_worked_example_100k_tokens_for_3_epochs(model, usd):
    assert 100_000 * 3 * training_price(model) / 1_000_000 == pytest.approx(usd)


@pytest.mark.parametrize("model,price", [
    ("gpt-4o-mini-2024-07-18", 3.0), ("gpt-4.1-mini", 5.0), ("gpt-4.1", 25.0), ("gpt-4.1-2025-04-14", 25.0),
    ("ft:gpt-4o-mini-2024-07-18:org::x", 3.0), ("llama3.2", None),
])
def test_training_price_takes_the_longest_matching_name(model, price):
    assert training_price(model) == price


def test_stats_describe_the_examples_that_will_be_trained():
    examples = dataset(20) + [chat("Ignored " * 50, "x", id=500, excluded=True)]
    counts = sorted(example_tokens(e, "gpt-4o-mini") for e in examples[:20])
    stats = dataset_stats(examples, "gpt-4o-mini")
    assert (stats.examples, stats.excluded) == (20, 1)
    assert (stats.tokens_min, stats.tokens_max, stats.tokens_total) == (counts[0], counts[-1], sum(counts))
    assert stats.tokens_p95 == counts[18]
    assert stats.cost.epochs == 5  # 100 // 20
    assert stats.cost.billed_tokens == sum(counts) * 5
    assert stats.cost.usd == pytest.approx(sum(counts) * 5 * 3.0 / 1_000_000)


def test_stats_take_the_epochs_given_and_a_price_table_given():
    stats = dataset_stats(dataset(20), "my-model", epochs=2, prices={"my-model": 1.0})
    assert stats.cost.epochs == 2
    assert stats.cost.usd == pytest.approx(stats.tokens_total * 2 / 1_000_000)
    assert dataset_stats(dataset(20), "my-model").cost.usd is None


def test_cost_is_estimated_for_every_base_model_in_the_table():
    costs = training_costs(dataset(200))
    assert [c.model for c in costs] == list(TRAINING_PRICES)
    by_model = {c.model: c for c in costs}
    assert by_model["gpt-4o"].usd == pytest.approx(by_model["gpt-4o-mini"].usd * 25 / 3)
    # gpt-3.5-turbo counts with its own tokenizer
    assert by_model["gpt-3.5-turbo"].billed_tokens == sum(example_tokens(e, "gpt-3.5-turbo") for e in dataset(200)) * 3
    assert [c.model for c in training_costs(dataset(5), prices={"house-model": 2.0})] == ["house-model"]


def test_a_preference_example_counts_its_prompt_and_chosen_reply():
    example = Example(messages=[TrainingMessage(role="user", content="Hi")], chosen="Hello there.", rejected="No.")
    plain = Example(messages=[TrainingMessage(role="user", content="Hi"),
                              TrainingMessage(role="assistant", content="Hello there.")])
    assert example_tokens(example, "gpt-4o") == example_tokens(plain, "gpt-4o")
