"""The judge on stored A/B rounds: ask it about a round's replies, keep its verdicts (table judge_verdicts, m008).

"Ask the judge" in the A/B tab calls judge_round after the human vote, so the verdict cannot anchor the vote;
agreement.py compares the stored verdicts with the votes, judge_datasets.py turns trusted ones into DPO pairs.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import PlaygroundError
from ..core.messages import Message
from ..core.pricing import Price
from ..core.store import Store, now
from .batch import Resolve, ask_row
from .judge import PairJudgement, Rubric, Verdict, judge_column, pair_rows, parse_verdict
from .votes import request_messages, round_record


class VerdictRecord(BaseModel):
    """The judge on two replies of a round (a = the lower column index), as stored."""

    model_config = ConfigDict(extra="forbid")

    round_id: str
    column_a: int
    column_b: int
    contestant_a: str
    contestant_b: str
    judge_model: str
    rubric: str
    rubric_version: str
    first: Verdict | None = Field(None, description="Verdict with a shown as A: A, B, C or None (no verdict).")
    second: Verdict | None = Field(None, description="Verdict with b shown as A.")
    first_reply: str = ""
    second_reply: str = ""
    answer_a_chars: int = 0
    answer_b_chars: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    error: str | None = None
    created_at: str = Field(default_factory=now)

    @property
    def judgement(self) -> PairJudgement:
        return PairJudgement(self.first, self.second)


def save_verdict(store: Store, record: VerdictRecord) -> int:
    judgement = record.judgement
    row = {**record.model_dump(), "winner": judgement.winner, "position_bias": int(judgement.position_bias),
           "unparsable": int(judgement.unparsable)}
    with store.writing() as db:
        return db.table("judge_verdicts").insert(row).last_pk


def load_verdicts(store: Store, judge_model: str | None = None, rubric_version: str | None = None) -> list[VerdictRecord]:
    """Stored verdicts, oldest first; the newest per (round, columns) when a round was judged more than once."""
    clauses, args = [], []
    if judge_model:
        clauses.append("judge_model = ?")
        args.append(judge_model)
    if rubric_version:
        clauses.append("rubric_version = ?")
        args.append(rubric_version)
    fields = list(VerdictRecord.model_fields)
    with store.db() as db:
        rows = list(db.query(f"select {', '.join(fields)} from judge_verdicts where {' and '.join(clauses) or '1'} "
                             "order by id", args))
    latest = {(r["round_id"], r["column_a"], r["column_b"], r["judge_model"]): r for r in rows}
    return [VerdictRecord(**r) for r in latest.values()]


@dataclass(frozen=True)
class RoundReplies:
    conversation: list[Message]
    replies: list[dict]  # ab_replies fields plus "text", in column order


def round_replies(store: Store, round_id: str) -> RoundReplies:
    record = round_record(store, round_id)
    if record is None:
        raise PlaygroundError(f"There is no round {round_id} to judge.")
    answered = [r for r in record.replies if r.exchange_id is not None and not r.error]
    if len(answered) < 2:
        raise PlaygroundError(f"Round {round_id} has {len(answered)} finished replies: the judge compares two.")
    exchanges = {r.exchange_id: store.exchange(r.exchange_id) for r in answered}
    # The user's side of the conversation, without the system prompt: columns may use different ones, and the
    # judge should weigh the replies against what the user asked.
    first = exchanges[answered[0].exchange_id]
    conversation = [m for m in request_messages(first["request"]) if m.role != "system"]
    return RoundReplies(conversation, [{**r.model_dump(), "text": exchanges[r.exchange_id]["reply"] or ""}
                                       for r in answered])


def judge_round(store: Store, round_id: str, judge_model: str, rubric: Rubric, resolve: Resolve,
                prices: dict[str, Price]) -> list[VerdictRecord]:
    """Ask the judge about every pair of finished replies in a round, both orders at once; store and return."""
    found = round_replies(store, round_id)
    column = judge_column(judge_model, rubric)
    records = []
    for i, a in enumerate(found.replies):
        for b in found.replies[i + 1:]:
            rows = pair_rows(round_id, found.conversation, a["text"], b["text"], rubric)
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="judge") as pool:
                first, second = pool.map(lambda row: ask_row(row, column, resolve, prices), rows)
            costs = [r.cost_usd for r in (first, second)]
            record = VerdictRecord(
                round_id=round_id, column_a=a["column_index"], column_b=b["column_index"],
                contestant_a=a["contestant"], contestant_b=b["contestant"], judge_model=judge_model,
                rubric=rubric.name, rubric_version=rubric.version,
                first=parse_verdict(first.reply) if first.ok else None,
                second=parse_verdict(second.reply) if second.ok else None,
                first_reply=first.reply, second_reply=second.reply,
                answer_a_chars=len(a["text"]), answer_b_chars=len(b["text"]),
                prompt_tokens=first.prompt_tokens + second.prompt_tokens,
                completion_tokens=first.completion_tokens + second.completion_tokens,
                cost_usd=None if None in costs else sum(costs),
                error="; ".join(r.error for r in (first, second) if r.error) or None)
            save_verdict(store, record)
            records.append(record)
    return records
