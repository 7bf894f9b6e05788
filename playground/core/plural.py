"""Counted nouns in messages: "1 error", "2 errors", never "1 errors"."""


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`3, 'chunk'` -> '3 chunks'; `1, 'reply', 'replies'` -> '1 reply'. Thousands get separators."""
    return f"{n:,} {noun if n == 1 else (many or noun + 's')}"
