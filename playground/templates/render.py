"""What a template sends: parse the editor's JSON, fill its variables, count tokens and cost, shape its example pairs.

Shared by the Templates tab, `template render` and data generation, so all three show and send the same request.
"""

import json
from dataclasses import dataclass

from ..chat.ask import ChatSettings
from ..chat.conversation import Conversation, Turn
from ..chat.personas import Persona
from ..core.errors import FileProblem, PlaygroundError
from ..core.messages import Message
from ..core.pricing import Price, cost_usd
from ..core.prompts import VARIABLE, Template, fill_messages, parse_model_text, render_prompt
from ..core.tokens import count_messages, count_text, encoding_name

EXAMPLE_INPUT = "Example input"
EXAMPLE_OUTPUT = "Example output"


class NotPairs(PlaygroundError):
    """The messages between the system prompt and the final user message are not user/assistant pairs."""


def parse_template(text: str, where, cls: type[Template] = Template) -> Template:
    """A template (or persona) from JSON text; every problem is a FileProblem naming `where`, the line and field."""
    if not (text or "").strip():
        raise FileProblem(where, 'is empty: a template is a JSON object with a "messages" list.', line=1)
    template = parse_model_text(text, where, cls)
    if not template.messages:
        raise FileProblem(where, 'has no messages: add at least one, e.g. {"role": "user", "content": "{{text}}"}.',
                          field="messages")
    return template


def with_messages(text: str, messages: list[Message], where, cls: type[Template] = Template) -> str:
    """The editor's JSON with its messages replaced, everything else (order, other fields) kept as written."""
    parse_template(text, where, cls)
    data = json.loads(text)
    data["messages"] = [m.model_dump() for m in messages]
    return json.dumps(data, indent=2, ensure_ascii=False)


# --- variables and preview -----------------------------------------------------------------------------


def values_for(template: Template, entered: dict[str, str] | None = None) -> dict[str, str]:
    """The template's default values overlaid with the ones entered (an emptied value counts as unfilled)."""
    return {**template.variables, **(entered or {})}


def fill_known(text: str, values: dict[str, str]) -> str:
    """Fill the variables that have values and leave the others showing, in one pass (values stay literal)."""
    def value(match):
        found = values.get(match.group(1))
        return str(found) if found is not None and str(found).strip() else match.group(0)
    return VARIABLE.sub(value, text)


@dataclass(frozen=True)
class Preview:
    """Exactly what would be sent, with its size and price."""

    model: str
    messages: list[Message]  # filled, unfilled variables left showing
    tokens: list[int]  # per message, including the per-message overhead
    total: int  # prompt tokens of the whole request
    prompt: str | None  # the prompt text when the model is called through /v1/completions
    exact: bool  # False when the tokenizer is a stand-in for a non-OpenAI model
    input_cost: float | None
    max_cost: float | None  # the prompt plus a reply of max_tokens
    max_tokens: int
    missing: list[str]

    def summary(self) -> str:
        approx = "" if self.exact else "~"
        if self.input_cost is None:
            cost = f"no price set for {self.model}"
        else:
            cost = (f"${self.input_cost:.6f} to send to {self.model}, "
                    f"up to ${self.max_cost:.6f} with a {self.max_tokens}-token reply")
        return f"{approx}{self.total} prompt tokens · {cost}"


def preview(template: Template, values: dict[str, str], model: str, prices: dict[str, Price],
            as_prompt: bool | None = None) -> Preview:
    """Render the request for `model` (a bare model name); `as_prompt` defaults to the template's mode."""
    as_prompt = template.mode == "completion" if as_prompt is None else as_prompt
    messages = [Message(role=m.role, content=fill_known(m.content, values)) for m in template.messages]
    missing = [n for n in template.variable_names() if not str(values.get(n, "")).strip()]
    prompt = render_prompt(messages, template.prompt_format) if as_prompt else None
    if prompt is not None:
        tokens = [count_text(_rendered_part(m, template), model) for m in messages]
        total = count_text(prompt, model)
    else:
        tokens = [count_messages([m], model) - count_messages([], model) for m in messages]
        total = count_messages(messages, model)
    input_cost = cost_usd(model, total, 0, prices)
    max_cost = cost_usd(model, total, template.max_tokens, prices)
    return Preview(model, messages, tokens, total, prompt, encoding_name(model)[1], input_cost, max_cost,
                   template.max_tokens, missing)


def _rendered_part(message: Message, template: Template) -> str:
    return render_prompt([message], template.prompt_format).removesuffix(template.prompt_format.assistant_prefix)


# --- Run -----------------------------------------------------------------------------------------------


def run_inputs(template: Template, name: str, values: dict[str, str], model_ref: str
               ) -> tuple[Persona, ChatSettings, Conversation]:
    """What chat.stream_reply needs to send this template as it is previewed: the last user message is the turn
    to answer, the messages before it are the system prompt and seed turns."""
    if not template.messages or template.messages[-1].role != "user":
        raise PlaygroundError("Run sends the template and shows the model's answer to its last message, so the last "
                              "message must be a user message: add one (it usually holds the {{input}}).")
    filled = fill_messages(template.messages, values)  # raises naming every unfilled variable
    data = {k: v for k, v in template.model_dump().items() if k in Persona.model_fields}
    data.setdefault("name", name)  # a plain template has no name; a persona keeps its own
    # No speaker prefix: Run sends exactly what the preview shows.
    data.update(speaker=None, messages=data["messages"][:-1])
    persona = Persona(**data)
    settings = ChatSettings(persona=persona.name, model=model_ref, system_prompt=template.system_prompt,
                            params=template.params, variables=values)
    return persona, settings, Conversation(turns=[Turn(role="user", content=filled[-1].content)])


# --- example pairs (zero-, one-, few-shot) -------------------------------------------------------------


@dataclass(frozen=True)
class Shots:
    head: list[Message]  # system messages at the start
    pairs: list[tuple[Message, Message]]  # the examples: a user message and the assistant's answer
    tail: list[Message]  # the final user message, which the model answers (may be absent)

    def messages(self) -> list[Message]:
        return [*self.head, *(m for pair in self.pairs for m in pair), *self.tail]


def shots(messages: list[Message]) -> Shots:
    head_end = 0
    while head_end < len(messages) and messages[head_end].role == "system":
        head_end += 1
    tail_start = len(messages) - 1 if len(messages) > head_end and messages[-1].role == "user" else len(messages)
    middle = messages[head_end:tail_start]
    pairs = []
    for i in range(0, len(middle), 2):
        pair = middle[i:i + 2]
        if len(pair) < 2 or (pair[0].role, pair[1].role) != ("user", "assistant"):
            position = head_end + i + 1
            raise NotPairs(f"Message {position} ({pair[0].role}) does not start a user/assistant example pair: put "
                           "the examples as user then assistant messages between the system prompt and the last "
                           "user message.")
        pairs.append((pair[0], pair[1]))
    return Shots(messages[:head_end], pairs, messages[tail_start:])


def zero_shot(messages: list[Message]) -> list[Message]:
    found = shots(messages)
    return [*found.head, *found.tail]


def add_pair(messages: list[Message], user: str = EXAMPLE_INPUT, assistant: str = EXAMPLE_OUTPUT) -> list[Message]:
    found = shots(messages)
    pair = (Message(role="user", content=user), Message(role="assistant", content=assistant))
    return Shots(found.head, [*found.pairs, pair], found.tail).messages()


def remove_last_pair(messages: list[Message]) -> list[Message]:
    found = shots(messages)
    if not found.pairs:
        raise NotPairs("There is no example pair to remove: the template is already zero-shot.")
    return Shots(found.head, found.pairs[:-1], found.tail).messages()


def pair_of(messages: list[Message], index: int) -> int | None:
    """Which example pair the message at `index` belongs to, or None (system prompt, final message)."""
    found = shots(messages)
    pair = (index - len(found.head)) // 2
    return pair if index >= len(found.head) and pair < len(found.pairs) else None


def move_pair(messages: list[Message], pair: int, offset: int) -> tuple[list[Message], int]:
    """Move one example pair up (-1) or down (+1); returns the messages and the pair's new position."""
    found = shots(messages)
    if not 0 <= pair < len(found.pairs):
        raise NotPairs("Select a message of an example pair first (click it in the table).")
    target = min(max(pair + offset, 0), len(found.pairs) - 1)
    pairs = list(found.pairs)
    pairs.insert(target, pairs.pop(pair))
    return Shots(found.head, pairs, found.tail).messages(), target


def first_row_of_pair(messages: list[Message], pair: int) -> int:
    return len(shots(messages).head) + 2 * pair
