"""Judge-labelled preference data: rounds the judge decided become DPO pairs, but only from a judge you trust.

Trust is measured, not assumed: the judge's Cohen's kappa against your blind votes must reach a threshold on
at least a number of shared rounds (agreement.py). Each pair is tagged with the judge model and the rubric
version that produced it, so a dataset can always tell judge labels from human ones, and which judge made them.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from ..chat.personas import Persona
from ..core.errors import PlaygroundError
from ..core.store import Store
from ..datasets.examples import Example
from ..datasets.store import DatasetNotFound, add_examples, create_dataset, iter_examples
from ..datasets.transcripts import ConversionOptions
from .agreement import Agreement, agreement_with_votes
from .judge_rounds import VerdictRecord, load_verdicts, round_replies
from .to_dataset import preference_example
from .votes import PreferencePair, request_messages

TAG = "ab-judge"
DEFAULT_MIN_KAPPA = 0.6
DEFAULT_MIN_ROUNDS = 20


class JudgeNotTrusted(PlaygroundError):
    def __init__(self, judge_model: str, found: Agreement, min_kappa: float, min_rounds: int):
        self.agreement = found
        kappa = "no kappa" if found.kappa is None else f"kappa {found.kappa:.2f}"
        super().__init__(
            f"The judge {judge_model} agrees with your blind votes at {kappa} on {found.rounds} shared rounds; "
            f"judge-labelled pairs need kappa >= {min_kappa:g} on at least {min_rounds}. Vote on more rounds and ask "
            "the judge about them, or improve the rubric.")


def judge_tags(judge_model: str, rubric_version: str) -> list[str]:
    return [TAG, f"judge:{judge_model}", f"rubric:{rubric_version}"]


@dataclass(frozen=True)
class AddedJudgePairs:
    dataset: str
    added: list[int]
    already: int
    undecided: int
    agreement: Agreement


def judge_pair(store: Store, verdict: VerdictRecord) -> PreferencePair | None:
    """The decided verdict as a preference pair (chosen = the judge's winner); None for a tie or no verdict."""
    winner = verdict.judgement.winner
    if winner not in ("a", "b"):
        return None
    replies = {r["column_index"]: r for r in round_replies(store, verdict.round_id).replies}
    chosen, rejected = (verdict.column_a, verdict.column_b) if winner == "a" else (verdict.column_b, verdict.column_a)
    won, lost = replies[chosen], replies[rejected]
    request = store.exchange(won["exchange_id"])["request"]

    return PreferencePair(
        round_id=verdict.round_id, prompt=request_messages(request), chosen=won["text"], rejected=lost["text"],
        chosen_model=won["contestant"], rejected_model=lost["contestant"], chosen_exchange_id=won["exchange_id"],
        rejected_exchange_id=lost["exchange_id"], persona=won["persona"] or "", reason="", anonymous=True,
        created_at=verdict.created_at)


def add_judge_pairs(store: Store, dataset: str, personas: Mapping[str, Persona], judge_model: str,
                    rubric_version: str, min_kappa: float = DEFAULT_MIN_KAPPA, min_rounds: int = DEFAULT_MIN_ROUNDS,
                    options: ConversionOptions = ConversionOptions()) -> AddedJudgePairs:
    """Add the pairs this judge (with this rubric version) decided to `dataset`; JudgeNotTrusted below the bar."""
    found = agreement_with_votes(store, judge_model, rubric_version)
    if not found.trusted(min_kappa, min_rounds):
        raise JudgeNotTrusted(judge_model, found, min_kappa, min_rounds)
    verdicts = load_verdicts(store, judge_model, rubric_version)
    pairs = [p for p in (judge_pair(store, v) for v in verdicts) if p is not None]
    pairs = [p for p in pairs if p.chosen.strip() != p.rejected.strip()]
    try:
        held = {tuple(e.source.exchange_ids) for e in iter_examples(store, dataset) if e.is_preference}
        exists = True
    except DatasetNotFound:
        held, exists = set(), False
    new = [p for p in pairs if (p.chosen_exchange_id, p.rejected_exchange_id) not in held]
    examples: list[Example] = []
    for pair in new:  # all converted before anything is written: a failure leaves the dataset as it was
        example = preference_example(store, pair, options, personas)
        examples.append(example.model_copy(update={"tags": judge_tags(judge_model, rubric_version)}))
    if not exists:
        create_dataset(store, dataset)
    added = add_examples(store, dataset, examples) if examples else []
    return AddedJudgePairs(dataset, added, already=len(pairs) - len(new), undecided=len(verdicts) - len(pairs),
                           agreement=found)
