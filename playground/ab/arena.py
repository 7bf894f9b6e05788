"""A/B comparisons: one message to 2-4 columns at once, the replies streamed in parallel, judged blind.

A column is a full chat setup (persona, model, system prompt, parameters) with its own conversation, so a
comparison can go on for several turns. A round is one message sent to every column. Each column answers
through chat.stream_reply on a thread of its own, so every reply is logged exactly as Chat logs it (each
column has its own conversation id); `RoundRun.updates()` merges their progress into one generator, which
is what one Gradio event needs to stream every column at once.

Blind mode shuffles the columns' order every round (the seed and the order are stored with the round) and
shows them as A, B, ... with their names hidden until the round is voted. Once names have been shown in a
comparison (a vote, or a round with blind mode off), later rounds of it are "sighted": the histories give
the columns away, so their votes are not counted as blind.
"""

import hashlib
import random
import threading
from collections.abc import Callable, Iterator
from queue import Queue

from pydantic import BaseModel, Field

from ..chat.ask import ChatSettings, build_request, check_message, stream_reply
from ..chat.conversation import Conversation, Turn
from ..chat.personas import persona_order
from ..chat.services import Services
from ..core.coalesce import UPDATE_INTERVAL_S, coalesce
from ..core.errors import PlaygroundError
from ..core.params import PARAM_NAMES
from ..core.store import new_id, now
from .votes import AlreadyVoted, Outcome, ReplyRecord, RoundRecord, VoteRecord, save_round, save_vote

LETTERS = "ABCD"
MIN_COLUMNS, MAX_COLUMNS = 2, 4
_FINISHED = object()


class ColumnProblem(PlaygroundError):
    """One or more columns cannot be sent to; the message names each column and what it is missing."""


class ArenaColumn(BaseModel):
    settings: ChatSettings
    label: str = Field("", description="Name on the leaderboard; empty: derived from the setup.")
    conversation: Conversation = Field(default_factory=Conversation)


class RoundReply(BaseModel):
    column: int
    contestant: str
    model: str
    persona: str
    exchange_id: int | None = None
    error: str | None = None
    done: bool = False


class Ballot(BaseModel):
    """A vote as cast: `winner` is the slot letter of the better (or best) reply for outcome "better"."""

    outcome: Outcome
    winner: str | None = None
    scores: dict[str, int] = Field(default_factory=dict, description="Optional 1-5 score by slot letter.")
    reason: str = ""

    def describe(self, columns: int) -> str:
        if self.outcome == "better":
            return f"{self.winner} is {'better' if columns == 2 else 'best'}"
        return {"tie": "Tie", "bothbad": "Both bad" if columns == 2 else "None is good"}[self.outcome]


class Round(BaseModel):
    id: str = Field(default_factory=new_id)
    number: int
    prompt: str
    order: list[int] = Field(description="Column index shown at each slot (A, B, ...).")
    seed: int | None = None
    blind: bool
    anonymous: bool
    replies: list[RoundReply] = Field(description="By column index.")
    vote: Ballot | None = None
    created_at: str = Field(default_factory=now)

    def slot(self, column: int) -> str:
        return LETTERS[self.order.index(column)]

    def column_at(self, slot: str) -> int:
        return self.order[LETTERS.index(slot)]

    @property
    def done(self) -> bool:
        return all(r.done for r in self.replies)

    @property
    def failed(self) -> list[RoundReply]:
        return [r for r in self.replies if r.done and (r.error or r.exchange_id is None)]

    @property
    def names_hidden(self) -> bool:
        return self.blind and self.vote is None

    def record(self, arena: "Arena") -> RoundRecord:
        return RoundRecord(
            id=self.id, comparison_id=arena.id, number=self.number, prompt=self.prompt, blind=self.blind,
            anonymous=self.anonymous, seed=self.seed, display_order=self.order, created_at=self.created_at,
            replies=[ReplyRecord(column_index=r.column, slot=self.slot(r.column), contestant=r.contestant,
                                 model=r.model, persona=r.persona,
                                 settings=arena.columns[r.column].settings.model_dump(mode="json"),
                                 conversation_id=arena.columns[r.column].conversation.id,
                                 exchange_id=r.exchange_id, error=r.error) for r in self.replies])


class Arena(BaseModel):
    """One comparison: its columns (each with its own conversation) and its rounds."""

    id: str = Field(default_factory=new_id)
    columns: list[ArenaColumn]
    rounds: list[Round] = Field(default_factory=list)

    @property
    def current(self) -> Round | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def sighted(self) -> bool:
        """Names have been shown in this comparison, so its later rounds are not blind."""
        return any(not r.blind or r.vote is not None for r in self.rounds)


# --- setting up --------------------------------------------------------------------------------------


def contestant_name(services: Services, column: ArenaColumn) -> str:
    """The column's name on the leaderboard: its label, else model · persona and whatever differs from the
    persona (its system prompt, by a short hash; each changed parameter), so one setup keeps one name."""
    if column.label.strip():
        return column.label.strip()
    settings = column.settings
    provider, model = services.registry.resolve(settings.model)
    persona = services.personas[settings.persona]
    parts = [f"{provider.name}:{model}", persona.name]
    if settings.system_prompt.strip() != persona.system_prompt.strip():
        digest = hashlib.sha1(settings.system_prompt.strip().encode()).hexdigest()[:6]
        parts.append(f"prompt {digest}" if settings.system_prompt.strip() else "no system prompt")
    for name in PARAM_NAMES:
        value = getattr(settings.params, name)
        if value != getattr(persona.params, name):
            parts.append(f"{name} {value}")
    return " · ".join(parts)


def starting_setups(services: Services, count: int = MAX_COLUMNS) -> list[tuple[str | None, str]]:
    """(persona, model) for each column of a new A/B tab, no two alike, none without a model.

    Every served chat model gets a column, the default persona's own model first; when there are more columns
    than models, the next columns go round the models again with the next chat persona. With nothing served,
    every column asks the lookup baseline, each in another persona.
    """
    names = persona_order(services.personas)
    chatting = [n for n in names if services.personas[n].mode == "chat"] or names
    first = services.personas[names[0]].model if names else None
    default = services.registry.default_model(first)
    models = [default] + [m for m in services.registry.served_chat_models() if m != default]
    personas = chatting or [None]
    return [(personas[(i // len(models)) % len(personas)], models[i % len(models)]) for i in range(count)]


def column_problems(services: Services, column: ArenaColumn) -> list[str]:
    """What stops a column from being sent, in words; nothing when it is ready."""
    settings = column.settings
    if not settings.persona:
        return ["pick a persona"]
    if settings.persona not in services.personas:
        return [f"the persona '{settings.persona}' does not exist: pick one from the list"]
    problems = []
    if not settings.model.strip():
        problems.append("pick a model (or type one)")
    else:
        try:
            services.registry.resolve(settings.model)
        except PlaygroundError as e:
            problems.append(str(e))
    try:  # unfilled {{variables}} show up when the request is built
        build_request(services.personas[settings.persona], settings, column.conversation)
    except PlaygroundError as e:
        problems.append(str(e))
    return problems


def check_columns(services: Services, columns: list[ArenaColumn]) -> list[str]:
    """Contestant names by column; raises ColumnProblem naming every column that cannot be sent and why."""
    if not MIN_COLUMNS <= len(columns) <= MAX_COLUMNS:
        raise ColumnProblem(f"Compare {MIN_COLUMNS} to {MAX_COLUMNS} columns, not {len(columns)}.")
    problems = [f"Column {i + 1}: {p}" for i, c in enumerate(columns) for p in column_problems(services, c)]
    if problems:
        raise ColumnProblem("Not sent. " + "; ".join(problems) + ".")
    names = [contestant_name(services, c) for c in columns]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ColumnProblem(
                f"Not sent. Columns {names.index(name) + 1} and {i + 1} are set up the same way ({name}): change "
                "the model, persona, system prompt or a parameter of one, or give them different labels.")
    return names


def prepare(services: Services, arena: Arena | None, columns: list[ArenaColumn]) -> Arena:
    """The comparison to send the next message to: a copy of `arena` with the new setups, or a fresh one
    (each column opening with its persona's greeting) when there is none or the columns' personas changed."""
    same = (arena is not None and len(arena.columns) == len(columns)
            and all(a.settings.persona == c.settings.persona for a, c in zip(arena.columns, columns)))
    if not same:
        greetings = [services.personas[c.settings.persona].greeting if c.settings.persona in services.personas
                     else "" for c in columns]
        return Arena(columns=[c.model_copy(update={"conversation": Conversation.start(g)})
                              for c, g in zip(columns, greetings)])
    arena = arena.model_copy(deep=True)
    for mine, new in zip(arena.columns, columns):
        mine.settings, mine.label = new.settings, new.label
    return arena


def new_round(services: Services, arena: Arena, text: str, blind: bool = True, seed: int | None = None) -> Round:
    """Check the message and the columns, add the user turn to every column, shuffle the order if blind."""
    check_message(text)
    if arena.current is not None and not arena.current.done:
        raise PlaygroundError("The last round is still running: wait for its replies, or Stop them, then send.")
    names = check_columns(services, arena.columns)
    order = list(range(len(arena.columns)))
    if blind:
        seed = random.SystemRandom().randrange(2 ** 31) if seed is None else seed
        random.Random(seed).shuffle(order)
    else:
        seed = None
    replies = []
    for i, column in enumerate(arena.columns):
        provider, model = services.registry.resolve(column.settings.model)
        replies.append(RoundReply(column=i, contestant=names[i], model=f"{provider.name}:{model}",
                                  persona=column.settings.persona))
        column.conversation.add_user(text)
        # The reply turn exists before its thread starts, so every column shows "…" at once.
        column.conversation.turns.append(Turn(role="assistant", content=""))
    current = Round(number=len(arena.rounds) + 1, prompt=text, order=order, seed=seed, blind=blind,
                    anonymous=blind and not arena.sighted, replies=replies)
    arena.rounds.append(current)
    return current


# --- running -----------------------------------------------------------------------------------------


class RoundRun:
    """One round in flight: a thread per column, each streaming its reply through chat.stream_reply.

    The threads write into the arena's conversations; `updates()` yields the arena whenever a reply has
    grown. When the last thread ends, the round is saved, then `on_done` is called. `stop()` ends every
    stream: each reply is logged as stopped, with its partial text, as Chat's Stop does.
    """

    def __init__(self, services: Services, arena: Arena, current: Round,
                 on_done: Callable[["RoundRun"], None] | None = None):
        self.services, self.arena, self.round, self.on_done = services, arena, current, on_done
        self.cancel = threading.Event()
        self.finished = threading.Event()
        self._events: Queue = Queue()
        self._left = len(current.replies)
        self._lock = threading.Lock()

    def start(self) -> "RoundRun":
        for reply in self.round.replies:
            threading.Thread(target=self._answer, args=(reply,), name=f"ab-{self.round.id}-{reply.column}",
                             daemon=True).start()
        return self

    def _answer(self, reply: RoundReply) -> None:
        column = self.arena.columns[reply.column]
        conversation = column.conversation
        try:
            persona = self.services.personas[column.settings.persona]
            replies = stream_reply(self.services, persona, column.settings, conversation)
            for _ in replies:
                if self.cancel.is_set():
                    replies.close()  # type: ignore[attr-defined]  # a generator; stream_reply logs the partial reply as stopped
                    break
                self._events.put(reply.column)
        except Exception as e:  # noqa: BLE001 - a column's failure is shown in that column only
            turn = conversation.turns[-1]
            turn.error, turn.incomplete = str(e) if isinstance(e, PlaygroundError) else f"{type(e).__name__}: {e}", True
        finally:
            turn = conversation.turns[-1]
            reply.exchange_id, reply.error, reply.done = turn.exchange_id, turn.error, True
            self._finish_one()

    def _finish_one(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            try:
                save_round(self.services.store, self.round.record(self.arena))
            finally:
                self.finished.set()
                if self.on_done:
                    self.on_done(self)
        self._events.put(_FINISHED)

    def updates(self, interval: float = UPDATE_INTERVAL_S) -> Iterator[Arena]:
        """The arena at once, then when a reply has grown (at most every `interval` s), and once all are done.

        One update carries every column, so four streams cost one UI update per interval, not four per token.
        """
        yield self.arena
        yield from coalesce(self._progress(), interval)

    def _progress(self) -> Iterator[Arena]:
        """The arena after every token of every column; ends once every column has finished."""
        running = len(self.round.replies)
        while running:
            running -= self._events.get() is _FINISHED
            yield self.arena

    def stop(self, timeout: float = 3.0) -> bool:
        """End every stream; True once all replies are logged (a stream waiting on its first byte may not be)."""
        self.cancel.set()
        return self.finished.wait(timeout)


def run_round(services: Services, arena: Arena, text: str, *, blind: bool = True, seed: int | None = None,
              on_done: Callable[[RoundRun], None] | None = None) -> RoundRun:
    """Start a round: raises ColumnProblem or EmptyMessage before anything is sent."""
    return RoundRun(services, arena, new_round(services, arena, text, blind, seed), on_done).start()


def stream_round(services: Services, arena: Arena, text: str, **kwargs) -> Iterator[Arena]:
    """run_round, then its updates: the arena as every column's reply grows."""
    yield from run_round(services, arena, text, **kwargs).updates()


# --- voting ------------------------------------------------------------------------------------------


def vote_problem(arena: Arena | None, ballot: Ballot) -> str | None:
    """Why this vote cannot be taken, or None."""
    current = arena.current if arena else None
    if current is None:
        return "There is nothing to vote on yet: send a message first."
    if not current.done:
        return "The replies are still coming: vote once every column has finished."
    if current.failed:
        slots = ", ".join(current.slot(r.column) for r in current.failed)
        return (f"This round cannot be judged: the reply in {slots} failed or was stopped. Send the message again "
                "or start a new comparison.")
    if current.vote is not None:
        return f"This round already has a vote ({current.vote.describe(len(current.order))}). Send the next message."
    slots = LETTERS[:len(current.order)]
    if ballot.outcome == "better" and ballot.winner not in slots:
        return f"There is no reply {ballot.winner} in this round: pick one of {', '.join(slots)}."
    for slot, score in ballot.scores.items():
        if slot not in slots or not 1 <= score <= 5:
            return f"A score is 1 to 5 for one of the replies {', '.join(slots)}; {slot}: {score} is not."
    return None


def cast_vote(services: Services, arena: Arena, ballot: Ballot) -> Round:
    """Record the vote on the current round (refused with a message when the round cannot take it)."""
    problem = vote_problem(arena, ballot)
    if problem:
        raise PlaygroundError(problem)
    current = arena.current
    try:
        save_vote(services.store, VoteRecord(
            round_id=current.id, outcome=ballot.outcome, reason=ballot.reason.strip(),
            winner_column=current.column_at(ballot.winner) if ballot.outcome == "better" else None,
            scores={current.column_at(slot): score for slot, score in ballot.scores.items()}))
    except AlreadyVoted:
        raise PlaygroundError("This round already has a vote. Send the next message.") from None
    current.vote = ballot
    return current


# --- showing -----------------------------------------------------------------------------------------


def blind_metrics(line: str, slot: str) -> str:
    """Chat's metrics line without what gives a column away: the model's name and the price."""
    parts = line.split(" · ")
    return " · ".join([slot, parts[1], *parts[3:]]) if len(parts) >= 5 else line


def shown_conversation(arena: Arena, slot: int) -> tuple[Conversation, int]:
    """The conversation shown at a slot of the current round and its column; blind metrics while names are hidden."""
    current = arena.current
    column = current.order[slot] if current else slot
    conversation = arena.columns[column].conversation
    if current is None or not current.names_hidden:
        return conversation, column
    masked = conversation.model_copy(deep=True)
    for turn in masked.turns:
        if turn.metrics:
            turn.metrics = blind_metrics(turn.metrics, LETTERS[slot])
    return masked, column
