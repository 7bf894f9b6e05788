"""A/B rounds and votes in the store (tables from migration m003_ab), read back for rating and for DPO.

A round is saved when its replies are finished, whether or not it is voted on; a vote refers to its round,
whose replies name their conversation and logged exchange, so every vote with a winner is also a set of
preference pairs (the chosen reply against each other reply). Every function takes the Store and opens
its own connection, as the store does.

Votes become rating.Vote battles the way Chatbot Arena counts them: "A is better" is a win for A, "Tie"
is a tie, "Both bad" is a "tie (bothbad)"; with more than two columns "X is best" is a win for X over each
of the others, and a tie or "none is good" ties every pair.
"""

import json
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import PlaygroundError
from ..core.messages import Message
from ..core.store import Store, now
from ..datasets.examples import Example, Source
from .rating import Vote

Outcome = Literal["better", "tie", "bothbad"]
TIE_KINDS = {"tie": "tie", "bothbad": "tie (bothbad)"}


class AlreadyVoted(PlaygroundError):
    def __init__(self, round_id: str):
        super().__init__(f"Round {round_id} already has a vote: each round is voted on once. "
                         "Send the next message for a new round.")


class ReplyRecord(BaseModel):
    """One column's reply in a round, as stored."""

    model_config = ConfigDict(extra="forbid")

    column_index: int = Field(ge=0, description="The column's place in the setup (0 = Column 1).")
    slot: str = Field(description="The letter the reply was shown under: A, B, ...")
    contestant: str = Field(description="The name the column is rated under on the leaderboard.")
    model: str
    persona: str = ""
    settings: dict = Field(default_factory=dict)
    conversation_id: str
    exchange_id: int | None = None
    error: str | None = None
    score: int | None = Field(None, ge=1, le=5)


class RoundRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    comparison_id: str
    number: int
    prompt: str
    blind: bool
    anonymous: bool = Field(description="Names were hidden until the vote and not shown earlier in the comparison.")
    seed: int | None = None
    display_order: list[int] = Field(description="Column index shown at each slot: [1, 0] shows Column 2 as A.")
    replies: list[ReplyRecord]
    created_at: str = Field(default_factory=now)


class VoteRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    round_id: str
    outcome: Outcome
    winner_column: int | None = None
    reason: str = ""
    scores: dict[int, int] = Field(default_factory=dict, description="Optional 1-5 score by column index.")
    created_at: str = Field(default_factory=now)


# --- writing -------------------------------------------------------------------------------------------


def save_round(store: Store, record: RoundRecord) -> None:
    """Insert or replace a round and its replies (saving the same round again updates it)."""
    row = record.model_dump(exclude={"replies", "display_order"})
    row.update(blind=int(record.blind), anonymous=int(record.anonymous),
               display_order=json.dumps(record.display_order))
    with store.writing() as db:
        db.table("ab_rounds").upsert(row, pk="id")
        db.execute("delete from ab_replies where round_id = ?", [record.id])
        db.table("ab_replies").insert_all(
            {**reply.model_dump(exclude={"settings"}), "settings": json.dumps(reply.settings, ensure_ascii=False),
             "round_id": record.id} for reply in record.replies)


def save_vote(store: Store, vote: VoteRecord) -> int:
    """Store a vote and the replies' scores; a round takes one vote only (AlreadyVoted)."""
    row = vote.model_dump(exclude={"scores"})
    try:
        with store.writing() as db:
            if not db.table("ab_rounds").count_where("id = ?", [vote.round_id]):
                raise PlaygroundError(f"There is no round {vote.round_id} to vote on.")
            vote_id = db.table("ab_votes").insert(row).last_pk
            for column, score in vote.scores.items():
                db.execute("update ab_replies set score = ? where round_id = ? and column_index = ?",
                           [score, vote.round_id, column])
    except sqlite3.IntegrityError:
        raise AlreadyVoted(vote.round_id) from None
    return vote_id


# --- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoteFilter:
    """Which votes count: blind ones only (the default), one persona's, within dates (inclusive, UTC)."""

    blind_only: bool = True
    persona: str | None = None
    since: date | None = None
    until: date | None = None

    def where(self) -> tuple[str, list]:
        clauses, args = [], []
        if self.blind_only:
            clauses.append("r.anonymous = 1")
        if self.persona:
            clauses.append("exists (select 1 from ab_replies p where p.round_id = r.id and p.persona = ?)")
            args.append(self.persona)
        if self.since:
            clauses.append("v.created_at >= ?")
            args.append(self.since.isoformat())
        if self.until:
            clauses.append("v.created_at < ?")
            args.append((self.until + timedelta(days=1)).isoformat())
        return " and ".join(clauses) or "1", args


@dataclass(frozen=True)
class VotedRound:
    round_id: str
    outcome: Outcome
    winner_column: int | None
    anonymous: bool
    reason: str
    created_at: str
    replies: list[dict]  # ab_replies rows in slot order


def voted_rounds(store: Store, where: VoteFilter = VoteFilter()) -> list[VotedRound]:
    clause, args = where.where()
    with store.db() as db:
        votes = list(db.query(
            "select v.round_id, v.outcome, v.winner_column, v.reason, v.created_at, r.anonymous "
            f"from ab_votes v join ab_rounds r on r.id = v.round_id where {clause} order by v.created_at, v.id", args))
        replies: dict[str, list[dict]] = {}
        if votes:
            for row in db.query(
                    "select * from ab_replies where round_id in (select v.round_id from ab_votes v join ab_rounds r "
                    f"on r.id = v.round_id where {clause}) order by round_id, slot", args):
                replies.setdefault(row["round_id"], []).append(row)
    return [VotedRound(v["round_id"], v["outcome"], v["winner_column"], bool(v["anonymous"]), v["reason"] or "",
                       v["created_at"], replies.get(v["round_id"], [])) for v in votes]


def pairwise(contestants: list[str], outcome: Outcome, winner: int | None, anonymous: bool = True) -> list[Vote]:
    """Battles from one vote over contestants in slot order; `winner` is the index of the better/best one."""
    if outcome == "better" and (winner is None or not 0 <= winner < len(contestants)):
        raise PlaygroundError(f"A 'better' vote needs the winner among {len(contestants)} columns.")
    battles = []
    for i, a in enumerate(contestants):
        for j in range(i + 1, len(contestants)):
            if outcome != "better":
                battles.append(Vote(model_a=a, model_b=contestants[j], winner=TIE_KINDS[outcome], anonymous=anonymous))
            elif winner in (i, j):  # with more than two columns only the winner's battles are decided
                battles.append(Vote(model_a=a, model_b=contestants[j], winner="model_a" if winner == i else "model_b",
                                    anonymous=anonymous))
    return battles


def load_votes(store: Store, where: VoteFilter = VoteFilter()) -> list[Vote]:
    """Every stored vote as rating battles, oldest first."""
    battles = []
    for voted in voted_rounds(store, where):
        columns = [r["column_index"] for r in voted.replies]
        winner = columns.index(voted.winner_column) if voted.winner_column in columns else None
        battles += pairwise([r["contestant"] for r in voted.replies], voted.outcome, winner, voted.anonymous)
    return battles


def for_rating(votes: list[Vote], blind_only: bool = True) -> list[Vote]:
    """rating only counts anonymous votes; when sighted votes are wanted too, count them as well."""
    return votes if blind_only else [v if v.anonymous else v.model_copy(update={"anonymous": True}) for v in votes]


@dataclass(frozen=True)
class PreferencePair:
    """A voted round as DPO data: the conversation up to the user turn, the reply chosen and one rejected."""

    round_id: str
    prompt: list[Message]
    chosen: str
    rejected: str
    chosen_model: str
    rejected_model: str
    chosen_exchange_id: int
    rejected_exchange_id: int
    persona: str
    reason: str
    anonymous: bool
    created_at: str

    def example(self) -> Example:
        """As a preference example for the Datasets tab (its source names both exchanges)."""
        return Example(messages=[m.model_dump() for m in self.prompt], chosen=self.chosen, rejected=self.rejected,
                       tags=["ab-vote"], source=Source(exchange_ids=[self.chosen_exchange_id, self.rejected_exchange_id],
                                                       persona=self.persona or None, model=self.chosen_model))


def preference_pairs(store: Store, where: VoteFilter = VoteFilter(blind_only=False)) -> list[PreferencePair]:
    """One pair per rejected reply of every vote with a winner; ties and "both bad" give none.

    The prompt is the chosen reply's request as it was sent (system prompt, few-shot turns, history): each
    column keeps its own history, so that is the context the chosen reply answers.
    """
    return pairs_of(store, voted_rounds(store, where))


def pairs_of(store: Store, rounds: list[VotedRound]) -> list[PreferencePair]:
    """The preference pairs of rounds already read with voted_rounds."""
    pairs = []
    for voted in rounds:
        if voted.outcome != "better":
            continue
        winner = next((r for r in voted.replies if r["column_index"] == voted.winner_column), None)
        if winner is None or winner["exchange_id"] is None:
            continue
        chosen = store.exchange(winner["exchange_id"])
        for other in voted.replies:
            if other is winner or other["exchange_id"] is None:
                continue
            rejected = store.exchange(other["exchange_id"])
            pairs.append(PreferencePair(
                round_id=voted.round_id, prompt=request_messages(chosen["request"]), chosen=chosen["reply"],
                rejected=rejected["reply"], chosen_model=winner["contestant"], rejected_model=other["contestant"],
                chosen_exchange_id=winner["exchange_id"], rejected_exchange_id=other["exchange_id"],
                persona=winner["persona"] or "", reason=voted.reason, anonymous=voted.anonymous,
                created_at=voted.created_at))
    return pairs


def request_messages(request: dict) -> list[Message]:
    """The messages of a logged request; a completion prompt becomes a single user turn."""
    if "messages" in request:
        return [Message(role=m["role"], content=m["content"]) for m in request["messages"]]
    return [Message(role="user", content=request.get("prompt", ""))]


def round_record(store: Store, round_id: str) -> RoundRecord | None:
    with store.db() as db:
        rows = list(db.query("select * from ab_rounds where id = ?", [round_id]))
        if not rows:
            return None
        replies = list(db.query("select * from ab_replies where round_id = ? order by column_index", [round_id]))
    row = rows[0]
    return RoundRecord(
        id=row["id"], comparison_id=row["comparison_id"], number=row["number"], prompt=row["prompt"],
        blind=bool(row["blind"]), anonymous=bool(row["anonymous"]), seed=row["seed"],
        display_order=json.loads(row["display_order"]), created_at=row["created_at"],
        replies=[ReplyRecord(**{k: v for k, v in r.items() if k not in ("id", "round_id", "settings")},
                             settings=json.loads(r["settings"] or "{}")) for r in replies])
