"""A/B votes as a preference (DPO) dataset: every vote with a winner gives chosen/rejected pairs.

The prompt of a pair goes through the same conversion as "Add to dataset" (transcripts.convert), so a DPO set
is trained with the short deploy prompt the model will run with, not the long persona prompt that produced
the replies. Adding the same votes again adds only the pairs the dataset does not hold yet.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from ..chat.personas import Persona
from ..core.errors import PlaygroundError
from ..core.store import Store
from ..datasets.examples import Example, Source, TrainingMessage
from ..datasets.store import DatasetNotFound, add_examples, create_dataset, iter_examples
from ..datasets.transcripts import ConversionError, ConversionOptions, convert, sent_chat_from_exchanges
from .votes import PreferencePair, VoteFilter, pairs_of, voted_rounds

TAG = "ab-vote"


@dataclass(frozen=True)
class AddedPairs:
    """What adding votes to a dataset did: pairs added, pairs it already held, pairs left out, votes with no winner."""

    dataset: str
    added: list[int]
    already: int
    identical: int
    no_winner: int
    votes: int

    def describe(self) -> str:
        text = (f"Added {_count(len(self.added), 'preference pair')} to **{self.dataset}** from "
                f"{_count(self.votes, 'vote')}")
        notes = []
        if self.already:
            notes.append(f"{_count(self.already, 'pair')} already in it")
        if self.identical:
            notes.append(f"{_count(self.identical, 'pair')} with the same text chosen and rejected left out")
        if self.no_winner:
            notes.append(f"{_count(self.no_winner, 'tie')} or “both bad” give no pair")
        return text + (f" ({'; '.join(notes)})." if notes else ".")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def preference_example(store: Store, pair: PreferencePair, options: ConversionOptions,
                       personas: Mapping[str, Persona]) -> Example:
    """The pair as a preference example, its prompt converted as `options` say (system prompt, seeds, speaker)."""
    # Weights mean nothing in a prompt, and the chosen reply is the voter's: no corrections, nothing weighted out.
    options = options.model_copy(update={"weight_disliked": False, "edits": {}, "upto_turn": None})
    converted = convert(sent_chat_from_exchanges(store, [pair.chosen_exchange_id], personas), options)
    prompt = [TrainingMessage(role=m.role, content=m.content) for m in converted.messages[:-1]]
    if not prompt or prompt[-1].role != "user":
        raise ConversionError(f"The vote on round {pair.round_id} has no user turn before its replies.")
    return Example(messages=prompt, chosen=pair.chosen, rejected=pair.rejected, tags=[TAG],
                   source=Source(exchange_ids=[pair.chosen_exchange_id, pair.rejected_exchange_id],
                                 persona=pair.persona or None, model=converted.source.model))


def add_vote_pairs(store: Store, dataset: str, personas: Mapping[str, Persona], where: VoteFilter = VoteFilter(False),
                   options: ConversionOptions = ConversionOptions()) -> AddedPairs:
    """Add the preference pairs of the votes `where` selects to `dataset` (created if new), skipping held ones."""
    rounds = voted_rounds(store, where)
    if not rounds:
        raise PlaygroundError("No votes match: vote on rounds in A/B › Compare, or widen the filters "
                              "(persona, dates, blind votes only).")
    pairs = pairs_of(store, rounds)
    # The same text as chosen and rejected teaches a preference trainer nothing (its loss has no gradient).
    distinct = [p for p in pairs if p.chosen.strip() != p.rejected.strip()]
    try:
        held = {tuple(e.source.exchange_ids) for e in iter_examples(store, dataset) if e.is_preference}
        exists = True
    except DatasetNotFound:
        held, exists = set(), False
    new = [p for p in distinct if (p.chosen_exchange_id, p.rejected_exchange_id) not in held]
    # Every pair is converted before anything is written: one that cannot be leaves the dataset as it was.
    examples = [preference_example(store, p, options, personas) for p in new]
    if not exists:
        create_dataset(store, dataset)
    added = add_examples(store, dataset, examples) if examples else []
    return AddedPairs(dataset=dataset, added=added, already=len(distinct) - len(new),
                      identical=len(pairs) - len(distinct), votes=len(rounds),
                      no_winner=sum(r.outcome != "better" for r in rounds))
