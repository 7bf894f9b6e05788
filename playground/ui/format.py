"""Pure translations between domain objects and what Gradio components show."""

from ..chat.conversation import Conversation, Turn

# What the message boxes' keys do; true only while each box is built with lines=1 and max_lines>1.
MESSAGE_KEYS = "Enter sends, Shift+Enter adds a line."
MESSAGE_HINT = f"Type a message. {MESSAGE_KEYS}"


def reply_markdown(turn: Turn) -> str:
    """A reply as shown: its text, then a warning if it failed, then its metrics line."""
    parts = [turn.content or ("" if turn.metrics or turn.error else "…")]
    if turn.incomplete and turn.content:
        parts.append("*(incomplete)*")
    if turn.error:
        parts.append(f"⚠️ {turn.error}")
    if turn.metrics:
        parts.append(f"<sub>{turn.metrics}</sub>")
    return "\n\n".join(p for p in parts if p)


def to_chatbot(conversation: Conversation) -> list[dict]:
    return [
        {"role": t.role, "content": reply_markdown(t) if t.role == "assistant" else t.content}
        for t in conversation.turns
    ]


def text_of(value) -> str:
    """Gradio sends message content as a list of parts; the domain wants a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return text_of(value.get("content", value.get("text", "")))
    if isinstance(value, list):
        return "".join(text_of(part) for part in value)
    return "" if value is None else str(value)


def error_notice(message: str) -> str:
    return f"⚠️ **{message}**" if message else ""
