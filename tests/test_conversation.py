import pytest

from playground.chat.conversation import Conversation, Turn
from playground.core.messages import Message


def shape(conversation: Conversation) -> list[tuple[str, str]]:
    return [(t.role, t.content) for t in conversation.turns]


def chat(*contents: str, greeting: str = "Hello!") -> Conversation:
    """Alternating user/assistant turns after the greeting."""
    conversation = Conversation.start(greeting)
    for i, text in enumerate(contents):
        conversation.turns.append(Turn(role="user" if i % 2 == 0 else "assistant", content=text,
                                       exchange_id=None if i % 2 == 0 else 100 + i))
    return conversation


def test_start_with_a_greeting():
    assert shape(Conversation.start("Support. What now?")) == [("assistant", "Support. What now?")]
    assert shape(Conversation.start("")) == []
    assert Conversation.start().id != Conversation.start().id


def test_add_user_and_pending_text():
    conversation = Conversation.start("Hi")
    assert conversation.pending_user_text() is None
    conversation.add_user("Look around")
    assert shape(conversation) == [("assistant", "Hi"), ("user", "Look around")]
    assert conversation.pending_user_text() == "Look around"


@pytest.mark.parametrize("turns, title", [
    (["  Kettle won't boil\nmore detail", "Descale it."], "Kettle won't boil"),
    ([], "New chat"),
    (["   ", "?"], "New chat"),
    (["x" * 200], "x" * 80),
])
def test_title_is_the_first_user_line(turns, title):
    assert chat(*turns).title() == title


def test_drop_last_reply_for_retry():
    conversation = chat("Look around", "You are in a room.")
    conversation.drop_last_reply()
    assert shape(conversation) == [("assistant", "Hello!"), ("user", "Look around")]
    assert conversation.pending_user_text() == "Look around"
    conversation.drop_last_reply()  # nothing to drop: the user turn stays
    assert shape(conversation) == [("assistant", "Hello!"), ("user", "Look around")]


def test_drop_last_reply_keeps_the_greeting():
    conversation = Conversation.start("Hello!")
    conversation.drop_last_reply()
    assert shape(conversation) == [("assistant", "Hello!")]


def test_undo_returns_the_text_and_removes_from_that_user_turn_on():
    conversation = chat("first", "reply one", "second", "reply two")
    assert conversation.undo() == "second"
    assert shape(conversation) == [("assistant", "Hello!"), ("user", "first"), ("assistant", "reply one")]
    assert conversation.undo() == "first"
    assert shape(conversation) == [("assistant", "Hello!")]
    assert conversation.undo() == ""
    assert shape(conversation) == [("assistant", "Hello!")]


def test_undo_of_an_unanswered_turn():
    conversation = chat("first", "reply one", "second")
    assert conversation.undo() == "second"
    assert shape(conversation)[-1] == ("assistant", "reply one")


def test_edit_replaces_a_user_turn_and_drops_what_followed():
    conversation = chat("first", "reply one", "second", "reply two")
    conversation.edit(1, "first, reworded")
    assert shape(conversation) == [("assistant", "Hello!"), ("user", "first, reworded")]
    assert conversation.pending_user_text() == "first, reworded"


@pytest.mark.parametrize("index", [0, 2, 5, -1, 99])
def test_edit_refuses_anything_but_a_user_turn(index):
    conversation = chat("first", "reply one")
    before = shape(conversation)
    with pytest.raises(IndexError):
        conversation.edit(index, "nope")
    assert shape(conversation) == before


def test_rate_returns_the_exchange_id():
    conversation = chat("first", "reply one")
    assert conversation.rate(2, 1) == 101
    assert conversation.turns[2].rating == 1
    assert conversation.rate(2, -1) == 101
    assert conversation.turns[2].rating == -1
    assert conversation.rate(0, 1) is None  # the greeting was never logged


def test_history_skips_empty_failed_replies_but_keeps_partial_ones():
    conversation = Conversation.start("Hello!")
    conversation.add_user("one")
    conversation.turns.append(Turn(role="assistant", content="", error="Cannot connect.", incomplete=True))
    conversation.add_user("two")
    conversation.turns.append(Turn(role="assistant", content="Partial one two", error="Broke off.", incomplete=True))
    conversation.add_user("three")
    assert conversation.history() == [
        Message(role="assistant", content="Hello!"), Message(role="user", content="one"),
        Message(role="user", content="two"), Message(role="assistant", content="Partial one two"),
        Message(role="user", content="three"),
    ]


def test_a_conversation_survives_a_json_round_trip():
    conversation = chat("first", "reply one")
    conversation.turns[-1].metrics = "gpt-4o-mini · 12 + 3 tokens"
    again = Conversation.model_validate_json(conversation.model_dump_json())
    assert again == conversation
    assert Conversation(id="x", turns=[t.model_dump() for t in conversation.turns]).history() == conversation.history()
