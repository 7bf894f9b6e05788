"""Import SillyTavern character cards (V1 and V2) as personas.

A card is JSON, either on its own (.json) or embedded in a PNG image as a text chunk with the keyword
`chara` whose text is the base64 of that JSON. PNG chunks are parsed with the standard library only.

V2: {"spec": "chara_card_v2", "spec_version": "2.0", "data": {name, description, personality, ...}}
V1: the same fields flat at the top level, without "spec".
"""

import base64
import binascii
import json
import re
import struct
import unicodedata
import zlib
from pathlib import Path

from pydantic import ValidationError

from ..core.errors import FileProblem
from ..core.messages import Message
from ..core.prompts import FILE_SIZE_LIMIT, NestingTooDeep, loads, read_text
from .personas import Persona, load_persona

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_KEYWORDS = ("chara", "ccv3")  # chara first; V3 cards also carry a V2 copy under "chara"
SPECS = ("chara_card_v2", "chara_card_v3")
TEXT_FIELDS = (
    "name", "description", "personality", "scenario", "first_mes", "mes_example",
    "creator_notes", "system_prompt", "post_history_instructions", "creator", "character_version",
)
DESCRIPTION_LIMIT = 200
# A card PNG is an avatar (typically well under 5 MB); its compressed text chunk holds a few KB of JSON. A zTXt
# chunk of a few KB can inflate to gigabytes, so inflating stops at the limit rather than after the damage.
PNG_SIZE_LIMIT = 32 * 1024 * 1024
CARD_TEXT_LIMIT = 8 * 1024 * 1024
USER_NAME = "User"
IMPORTED_TAG = "imported"

_CHAR = re.compile(r"\{\{\s*char\s*\}\}|<bot>", re.IGNORECASE)
_USER = re.compile(r"\{\{\s*user\s*\}\}|<user>", re.IGNORECASE)
_ORIGINAL = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)
_START = re.compile(r"<start>", re.IGNORECASE)
_USER_TURN = re.compile(r"^\s*(?:\{\{\s*user\s*\}\}|<user>)\s*:[ \t]?(.*)$", re.IGNORECASE)
_ASCII_FOLD = {"æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "ß": "ss",
               "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D"}


# ---------------------------------------------------------------- reading


def read_card(path: Path) -> dict:
    """The card's `data` dict from a .json or .png file; every failure is a FileProblem."""
    path = Path(path)
    limit = PNG_SIZE_LIMIT if path.suffix.lower() == ".png" else FILE_SIZE_LIMIT
    try:
        with path.open("rb") as f:
            raw = f.read(limit + 1)
    except OSError as e:
        raise FileProblem(path, f"cannot be read: {e.strerror}.") from None
    if len(raw) > limit:
        raise FileProblem(path, f"is larger than {limit // (1024 * 1024)} MB, too large for a character card: "
                          "check that it is the right file, or export the card again.")
    if not raw:
        raise FileProblem(path, "is empty: expected a character card (.png or .json).")
    if raw.startswith(PNG_SIGNATURE):
        card = _card_from_png(path, raw)
    elif path.suffix.lower() == ".png":
        raise FileProblem(path, "is not a PNG image (the PNG signature is missing); export the card again.")
    elif path.suffix.lower() == ".json":
        card = _parse_json(path, _utf8(path, raw, "is not valid UTF-8"), json_file=True)
    else:
        raise FileProblem(path, "is not a character card: expected a .png image or a .json file.")
    return _card_data(path, card)


def _card_from_png(path: Path, raw: bytes) -> dict:
    texts = _png_texts(path, raw)
    keyword = next((k for k in CARD_KEYWORDS if k in texts), None)
    if keyword is None:
        raise FileProblem(path, "is a PNG image but has no embedded character card (no 'chara' text chunk).")
    text = texts[keyword].strip()
    if text.startswith("{"):  # a few old tools store the JSON itself rather than its base64
        payload = text
    else:
        try:
            compact = re.sub(r"\s+", "", text)
            decoded = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise FileProblem(path, f"has an embedded character card ('{keyword}' chunk) that is not valid base64.") from None
        payload = _utf8(path, decoded, "has an embedded character card that is not valid UTF-8 text")
    return _parse_json(path, payload, json_file=False)


def _png_texts(path: Path, raw: bytes) -> dict[str, str]:
    """Keyword -> text of the tEXt, zTXt and iTXt chunks (first one wins per keyword, keywords lowercased)."""
    texts: dict[str, str] = {}
    pos = len(PNG_SIGNATURE)
    while pos < len(raw):
        if pos + 8 > len(raw):
            raise FileProblem(path, "is a damaged PNG image: it ends in the middle of a chunk header.")
        length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + length]
        if len(body) < length or pos + 12 + length > len(raw):
            raise FileProblem(path, f"is a damaged PNG image: its {kind.decode('latin-1')!r} chunk is cut short.")
        pos += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        keyword, _, rest = body.partition(b"\x00")
        key = keyword.decode("latin-1").strip().lower()
        if key not in CARD_KEYWORDS or key in texts:
            continue
        try:
            texts[key] = _chunk_text(kind, rest)
        except InflatesTooFar:
            raise FileProblem(path, f"has a compressed '{key}' chunk that inflates to more than "
                              f"{CARD_TEXT_LIMIT // (1024 * 1024)} MB: it is not a usable card (or a "
                              "decompression bomb); export the card again.") from None
        except (zlib.error, UnicodeDecodeError, IndexError):
            raise FileProblem(path, f"is a damaged PNG image: its {kind.decode()} '{key}' chunk cannot be decoded.") from None
    return texts


def _chunk_text(kind: bytes, rest: bytes) -> str:
    if kind == b"tEXt":
        return rest.decode("latin-1")
    if kind == b"zTXt":  # compression method byte, then zlib data
        return _inflate(rest[1:]).decode("latin-1")
    # iTXt: compression flag, method, language tag \0, translated keyword \0, UTF-8 text
    flag = rest[0]
    _lang, _, rest = rest[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    return (_inflate(text) if flag else text).decode("utf-8")


class InflatesTooFar(Exception):
    pass


def _inflate(data: bytes, limit: int = CARD_TEXT_LIMIT) -> bytes:
    """zlib data inflated to at most `limit` bytes; more raises InflatesTooFar, having never held more."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise InflatesTooFar()
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


def _utf8(path: Path, raw: bytes, problem: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FileProblem(path, f"{problem} (byte {e.start}); save it as UTF-8.") from None


def _parse_json(path: Path, text: str, json_file: bool) -> dict:
    where = "is" if json_file else "has an embedded character card that is"
    try:
        data = loads(text)
    except json.JSONDecodeError as e:
        raise FileProblem(path, f"{where} not valid JSON: {e.msg} at column {e.colno}.",
                          line=e.lineno if json_file else None) from None
    except NestingTooDeep as e:
        raise FileProblem(path, f"{where} not a usable card: it {e}") from None
    if not isinstance(data, dict):
        raise FileProblem(path, f"{where} not a character card: expected a JSON object {{ ... }} at the top level.")
    return data


def _card_data(path: Path, card: dict) -> dict:
    """Unwrap V2/V3 `data`, or take a V1 card as is, and check the fields the import relies on."""
    if "spec" in card:
        if card["spec"] not in SPECS:
            raise FileProblem(path, f"has an unsupported card spec {card['spec']!r}: expected 'chara_card_v2'.", field="spec")
        data, prefix = card.get("data"), "data."
        if not isinstance(data, dict):
            raise FileProblem(path, "is a V2 character card without a 'data' object.", field="data")
    elif isinstance(card.get("data"), dict) and "name" not in card:
        data, prefix = card["data"], "data."  # V2 layout with the "spec" line lost
    else:
        data, prefix = card, ""  # V1: flat fields
    data = dict(data)
    for key in TEXT_FIELDS:
        value = data.get(key)
        if value is None:
            data[key] = ""
        elif not isinstance(value, str):
            raise FileProblem(path, f"must be text, not {type(value).__name__}.", field=prefix + key)
    if not data["name"].strip():
        raise FileProblem(path, "has no character name: the card's 'name' is missing or empty.", field=prefix + "name")
    tags = data.get("tags")
    if tags is None:
        data["tags"] = []
    elif isinstance(tags, str):
        data["tags"] = [t.strip() for t in tags.split(",") if t.strip()]
    elif not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise FileProblem(path, "must be a list of text tags.", field=prefix + "tags")
    return data


# ---------------------------------------------------------------- converting


def persona_from_card(card: dict, source: str = "") -> Persona:
    """A Persona from a card's `data` dict (V1 fields or V2 `data`). `source` names the card in errors."""
    where = source or "character card"
    name = _text(card, "name").strip()
    if not name:
        raise FileProblem(where, "has no character name: the card's 'name' is missing or empty.", field="name")

    def sub(text: str) -> str:
        return replace_macros(text, name).strip()

    built = "\n\n".join(part for part in (
        sub(_text(card, "description")),
        _labelled("Personality", sub(_text(card, "personality"))),
        _labelled("Scenario", sub(_text(card, "scenario"))),
    ) if part)
    system = sub(_ORIGINAL.sub(lambda _: built, _text(card, "system_prompt"))) or built
    post_history = sub(_ORIGINAL.sub("", _text(card, "post_history_instructions")))
    system = "\n\n".join(part for part in (system, post_history) if part)

    messages = [Message(role="system", content=system)] if system else []
    messages += parse_examples(_text(card, "mes_example"), name)
    tags = _tags(card)
    try:
        return Persona(
            name=name,
            description=short_description(*(sub(_text(card, k)) for k in ("description", "personality", "scenario"))),
            greeting=sub(_text(card, "first_mes")),
            messages=messages,
            tags=tags,
        )
    except ValidationError as e:
        err = e.errors()[0]
        raise FileProblem(where, f"cannot become a persona: {err['msg']}.", field=".".join(map(str, err["loc"])) or None) from None


def replace_macros(text: str, name: str) -> str:
    """{{char}} / <BOT> -> the character's name, {{user}} / <USER> -> "User", in any letter case."""
    return _USER.sub(lambda _: USER_NAME, _CHAR.sub(lambda _: name, text))


def parse_examples(mes_example: str, name: str) -> list[Message]:
    """Few-shot turns from `mes_example`.

    Blocks are separated by <START>; a line starting "{{user}}:" opens a user turn, "{{char}}:" (or <BOT>:, or
    the character's own name) an assistant turn; other lines continue the turn before them. Text before the
    first turn of a block is dropped.
    """
    char_turn = re.compile(r"^\s*(?:\{\{\s*char\s*\}\}|<bot>|" + re.escape(name) + r")\s*:[ \t]?(.*)$", re.IGNORECASE)
    turns: list[tuple[str, list[str]]] = []
    for block in _START.split(mes_example.replace("\r\n", "\n").replace("\r", "\n")):
        current: tuple[str, list[str]] | None = None
        for line in block.split("\n"):
            user, char = _USER_TURN.match(line), char_turn.match(line)
            if user or char:
                current = ("user" if user else "assistant", [(user or char).group(1)])
                turns.append(current)
            elif current is not None:
                current[1].append(line)
    messages = []
    for role, lines in turns:
        content = replace_macros("\n".join(lines), name).strip()
        if content:
            messages.append(Message(role=role, content=content))
    return messages


def short_description(*texts: str) -> str:
    """The first non-empty line of the first text that has one, cut at a word to at most 200 characters."""
    for text in texts:
        line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        if not line:
            continue
        if len(line) <= DESCRIPTION_LIMIT:
            return line
        cut = line[:DESCRIPTION_LIMIT - 1]
        cut = cut[:cut.rfind(" ")] if " " in cut[DESCRIPTION_LIMIT // 2:] else cut
        return cut.rstrip(" ,;:-") + "…"
    return ""


def _text(card: dict, key: str) -> str:
    value = card.get(key)
    return value if isinstance(value, str) else ""


def _labelled(label: str, text: str) -> str:
    return f"{label}: {text}" if text else ""


def _tags(card: dict) -> list[str]:
    raw = card.get("tags") or []
    if isinstance(raw, str):
        raw = raw.split(",")
    tags: list[str] = []
    for tag in raw:
        if isinstance(tag, str) and tag.strip() and tag.strip() not in tags:
            tags.append(tag.strip())
    if IMPORTED_TAG not in tags:
        tags.append(IMPORTED_TAG)
    return tags


# ---------------------------------------------------------------- importing


def slugify(name: str) -> str:
    """A lowercase ASCII file name stem: "Zoë Ærwin!" -> "zoe-aerwin"."""
    folded = "".join(_ASCII_FOLD.get(c, c) for c in name)
    ascii_text = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60].strip("-")
    return slug or "character"


def import_card(path: Path, personas_dir: Path) -> Path:
    """Read a card, convert it and write it to personas_dir/<slug>.json; never overwrites (adds -2, -3, ...).

    If a persona with the same name already exists there, the new one is named "Name (2)", "Name (3)", ...
    so that load_personas keeps both.
    """
    path, personas_dir = Path(path), Path(personas_dir)
    persona = persona_from_card(read_card(path), source=str(path))
    slug = slugify(persona.name)
    personas_dir.mkdir(parents=True, exist_ok=True)
    taken = _names_in(personas_dir)
    if persona.name in taken:
        n = 2
        while f"{persona.name} ({n})" in taken:
            n += 1
        persona = persona.model_copy(update={"name": f"{persona.name} ({n})"})
    data = {"name": persona.name, **persona.model_dump(mode="json", exclude_defaults=True)}
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    n = 1
    while True:
        target = personas_dir / (f"{slug}.json" if n == 1 else f"{slug}-{n}.json")
        try:
            with open(target, "x", encoding="utf-8") as f:  # "x": fails rather than overwrite, even in a race
                f.write(text)
            return target
        except FileExistsError:
            n += 1


def _names_in(folder: Path) -> set[str]:
    names = set()
    for file in folder.glob("*.json"):
        try:
            name = loads(read_text(file)).get("name")
        except (FileProblem, ValueError, AttributeError):
            continue
        if isinstance(name, str):
            names.add(name)
    return names


def import_persona(services, path: Path) -> Persona:
    """Import a card into the personas folder and make it available at once, without a restart."""
    persona = load_persona(import_card(Path(path), services.personas_dir))
    services.personas[persona.name] = persona
    return persona
