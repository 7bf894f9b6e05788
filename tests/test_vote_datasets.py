"""A/B votes into a preference dataset: real rounds against the loopback server, a real store, then exported."""

import json

import pytest

from playground.ab import arena as ab
from playground.ab.arena import Arena, ArenaColumn, Ballot
from playground.ab.to_dataset import add_vote_pairs
from playground.ab.votes import VoteFilter, preference_pairs
from playground.chat.ask import ChatSettings
from playground.cli import main
from playground.core.errors import PlaygroundError
from playground.datasets.exports import export_dataset
from playground.datasets.store import get_dataset, import_file, iter_examples, list_datasets
from playground.datasets.transcripts import ConversionOptions

BRACK = "Professor Ignatia Brack"
LOC = "Location Extractor"


def arena_of(services, *models, persona=BRACK) -> Arena:
    columns = [ArenaColumn(settings=ChatSettings.for_persona(services.personas[persona], m)) for m in models]
    return ab.prepare(services, None, columns)


def play_and_vote(services, arena, text, winner_column=0, outcome="better"):
    for _ in ab.stream_round(services, arena, text):
        pass
    winner = "ABCD"[arena.current.order.index(winner_column)] if outcome == "better" else None
    ab.cast_vote(services, arena, Ballot(outcome=outcome, winner=winner))


def brack_votes(services) -> Arena:
    """Two voted rounds in one comparison: column 1 (gpt-4o-mini) wins both; column 2 is cut to one token."""
    arena = arena_of(services, "local:gpt-4o-mini", "local:gpt-4o")
    arena.columns[1].settings.params.max_tokens = 1
    play_and_vote(services, arena, "What's that smell?")
    play_and_vote(services, arena, "And that bang?")
    return arena


def test_votes_become_pairs_with_the_deploy_prompt_and_the_chosen_columns_history(services, fake_server):
    brack = services.personas[BRACK]
    brack_votes(services)

    added = add_vote_pairs(services.store, "brack prefs", services.personas)

    assert (len(added.added), added.already, added.votes, added.no_winner) == (2, 0, 2, 0)
    assert added.describe() == "Added 2 preference pairs to **brack prefs** from 2 votes."
    first, second = iter_examples(services.store, "brack prefs")
    # The long persona prompt and its few-shot turns were sent; the pair trains on the short deploy prompt.
    # Each column starts with the persona's greeting, as Chat does; it is left out unless kept (an option).
    assert [(m.role, m.content) for m in first.messages] == [
        ("system", brack.deploy_prompt), ("user", "Tobin: What's that smell?")]
    assert (first.chosen, first.rejected) == ("Echo: Tobin: What's that smell?", "Echo:")
    # The second round's prompt carries the winning column's own history.
    assert [(m.role, m.content) for m in second.messages] == [
        ("system", brack.deploy_prompt), ("user", "Tobin: What's that smell?"),
        ("assistant", "Echo: Tobin: What's that smell?"), ("user", "Tobin: And that bang?")]
    assert (second.chosen, second.rejected) == ("Echo: Tobin: And that bang?", "Echo:")
    assert all(m.weight is None for m in second.messages)
    pairs = preference_pairs(services.store)
    assert [e.source.exchange_ids for e in (first, second)] == [
        [p.chosen_exchange_id, p.rejected_exchange_id] for p in pairs]
    assert (second.source.persona, second.tags) == (BRACK, ["ab-vote"])


def test_the_prompt_as_sent_keeps_the_persona_prompt_and_its_seed_turns(services, fake_server):
    brack_votes(services)

    add_vote_pairs(services.store, "as sent", services.personas,
                   options=ConversionOptions(system="persona", keep_seed_turns=True, keep_greeting=True))

    pairs = preference_pairs(services.store)
    assert [[(m.role, m.content) for m in e.messages] for e in iter_examples(services.store, "as sent")] == [
        [(m.role, m.content) for m in p.prompt] for p in pairs]
    assert len(pairs[0].prompt) > 2  # the persona's few-shot turns were sent, and are kept


def test_adding_the_same_votes_again_adds_only_new_pairs(services, fake_server):
    arena = brack_votes(services)
    add_vote_pairs(services.store, "prefs", services.personas)
    play_and_vote(services, arena, "Is it safe?")

    again = add_vote_pairs(services.store, "prefs", services.personas)

    assert (len(again.added), again.already) == (1, 2)
    assert "2 pairs already in it" in again.describe()
    assert get_dataset(services.store, "prefs").examples == 3


def test_a_best_of_three_gives_a_pair_against_each_other_column_and_ties_give_none(services, fake_server):
    arena = arena_of(services, "local:gpt-4o-mini", "local:gpt-4o", "local:echo", persona=LOC)
    for losing in arena.columns[:2]:
        losing.settings.params.max_tokens = 1
    play_and_vote(services, arena, "Trains from Lyon to Turin", winner_column=2)
    tie = arena_of(services, "local:gpt-4o-mini", "local:gpt-4o", persona=LOC)
    play_and_vote(services, tie, "Boats to Malta", outcome="tie")

    added = add_vote_pairs(services.store, "three", services.personas)

    assert (len(added.added), added.votes, added.no_winner) == (2, 2, 1)
    assert "1 tie or “both bad” give no pair" in added.describe()
    assert {e.source.model for e in iter_examples(services.store, "three")} == {"local:echo"}


def test_a_pair_whose_replies_are_the_same_text_is_left_out(services, fake_server):
    arena = arena_of(services, "local:gpt-4o-mini", "local:gpt-4o")  # both echo the message
    play_and_vote(services, arena, "Is it on?")

    added = add_vote_pairs(services.store, "same", services.personas)

    assert (added.added, added.identical) == ([], 1)
    assert "1 pair with the same text chosen and rejected left out" in added.describe()


def test_filters_pick_the_votes_and_no_match_says_what_to_do(services, fake_server):
    brack_votes(services)
    with pytest.raises(PlaygroundError, match="No votes match"):
        add_vote_pairs(services.store, "none", services.personas, VoteFilter(blind_only=False, persona=LOC))
    assert [d.name for d in list_datasets(services.store)] == []


def test_a_pair_that_cannot_be_converted_leaves_no_dataset_behind(services, fake_server):
    brack_votes(services)
    # The persona is gone, so there is no deploy prompt to put in place of the one sent.
    with pytest.raises(PlaygroundError, match="has no deploy prompt"):
        add_vote_pairs(services.store, "orphans", {})
    assert [d.name for d in list_datasets(services.store)] == []


@pytest.mark.parametrize("format", ["openai-dpo", "trl-preference"])
def test_a_vote_dataset_exports_and_imports_back_as_the_same_pairs(services, fake_server, tmp_path, format):
    arena = brack_votes(services)
    for i in range(10):  # enough examples for a training file
        play_and_vote(services, arena, f"And what is gadget {i}?")
    add_vote_pairs(services.store, "prefs", services.personas)

    [path] = export_dataset(services.store, "prefs", format, tmp_path).files
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    import_file(services.store, path, "back")

    def shape(name):
        return [([(m.role, m.content) for m in e.messages], e.chosen, e.rejected)
                for e in iter_examples(services.store, name)]
    assert shape("back") == shape("prefs") and len(shape("back")) == 12
    if format == "openai-dpo":
        assert first["preferred_output"] == [{"role": "assistant", "content": "Echo: Tobin: What's that smell?"}]
    else:
        assert first["chosen"][-1] == {"role": "assistant", "content": "Echo: Tobin: What's that smell?"}


def test_the_cli_adds_vote_pairs_and_says_what_it_did(services, fake_server, capsys):
    brack_votes(services)
    argv = ["dataset", "from-votes", "cli prefs", "--personas-dir", str(services.personas_dir),
            "--home", str(services.home)]

    assert main([*argv, "--system", "none"]) == 0
    assert capsys.readouterr().out == "Added 2 preference pairs to cli prefs from 2 votes.\n"
    assert [e.messages[0].role for e in iter_examples(services.store, "cli prefs")] == ["user", "user"]  # no greeting first

    assert main([*argv, "--persona", LOC]) == 1
    assert "No votes match" in capsys.readouterr().err
