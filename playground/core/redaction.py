"""Keys out of every text a server sends back.

A server may echo the request's Authorization header in an error body or a stream's error event; that text
is shown, logged to SQLite and printed, so it passes through `redact` first (ProviderError does it when it is
built). Configured keys are removed by value; anything shaped like a key is removed by its shape, which also
catches a key this app never had (another account's, a proxy's).
"""

import re
from collections.abc import Iterable, Mapping

MASK = "[redacted]"
# "Bearer <token>" in any case, and OpenAI-style "sk-..." / "sk-proj-..." keys standing on their own.
KEY_SHAPES = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{4,}|(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{8,}")
# Shorter values are not worth masking everywhere they occur ("ab" would go from every word).
MIN_SECRET_LENGTH = 4
# Variable names that hold a key by convention, besides each endpoint's own api_key_env.
KEY_VARIABLE = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET)$", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret value and every key-shaped token replaced by [redacted]."""
    text = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return KEY_SHAPES.sub(lambda m: f"{m.group(1)} {MASK}" if m.group(1) else MASK, text)


def configured_secrets(environ: Mapping[str, str], key_variables: Iterable[str | None] = ()) -> frozenset[str]:
    """The values of the named key variables, OPENAI_API_KEY and every variable named like a key."""
    names = {n for n in key_variables if n} | {"OPENAI_API_KEY"}
    names |= {n for n in environ if KEY_VARIABLE.search(n)}
    return frozenset(v.strip() for n in names if (v := environ.get(n)) and v.strip())
