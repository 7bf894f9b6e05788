import base64
import json
import struct
import zlib
from pathlib import Path

import pytest

from playground.chat.cards import (
    import_card,
    parse_examples,
    persona_from_card,
    read_card,
    replace_macros,
    short_description,
    slugify,
)
from playground.chat.personas import Persona, load_persona, load_personas
from playground.core.errors import FileProblem
from playground.core.messages import Message

FIXTURES = Path(__file__).parent / "fixtures" / "cards"
V2_FILE = FIXTURES / "orla_venn_v2.json"
V1_FILE = FIXTURES / "orla_venn_v1.json"


# ---------------------------------------------------------------- helpers


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(*extra_chunks: bytes, text_after_idat: bool = False) -> bytes:
    """A valid 1x1 grey PNG, with extra chunks before (or after) the image data."""
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x80"))  # filter byte 0, one grey pixel
    iend = chunk(b"IEND", b"")
    extra = b"".join(extra_chunks)
    middle = idat + extra if text_after_idat else extra + idat
    return b"\x89PNG\r\n\x1a\n" + ihdr + middle + iend


def b64(card) -> bytes:
    return base64.b64encode(json.dumps(card).encode("utf-8"))


def text_chunk(card, keyword: bytes = b"chara") -> bytes:
    return chunk(b"tEXt", keyword + b"\x00" + b64(card))


def ztxt_chunk(card) -> bytes:
    return chunk(b"zTXt", b"chara\x00\x00" + zlib.compress(b64(card)))


def itxt_chunk(card, compressed: bool) -> bytes:
    text = zlib.compress(b64(card)) if compressed else b64(card)
    return chunk(b"iTXt", b"chara\x00" + bytes([int(compressed), 0]) + b"\x00\x00" + text)


def v2(**data) -> dict:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Orla Venn", **data}}


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


CARD = json.loads(V2_FILE.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("name, content", [
    ("v2.json", V2_FILE.read_bytes()),
    ("v2-bom.json", b"\xef\xbb\xbf" + V2_FILE.read_bytes()),
    ("text.png", png(text_chunk(CARD))),
    ("text-after-idat.png", png(text_chunk(CARD), text_after_idat=True)),
    ("ztxt.png", png(ztxt_chunk(CARD))),
    ("itxt.png", png(itxt_chunk(CARD, compressed=False))),
    ("itxt-compressed.png", png(itxt_chunk(CARD, compressed=True))),
    ("other-text-first.png", png(chunk(b"tEXt", b"Comment\x00made by hand"), text_chunk(CARD))),
    ("v3-only.png", png(text_chunk({**CARD, "spec": "chara_card_v3", "spec_version": "3.0"}, keyword=b"ccv3"))),
    ("raw-json.png", png(chunk(b"tEXt", b"chara\x00" + json.dumps(CARD).encode("latin-1")))),
    ("card.PNG", png(text_chunk(CARD))),
])
def test_read_card_formats(tmp_path, name, content):
    data = read_card(write(tmp_path, name, content))
    assert data["name"] == "Orla Venn"
    assert data["tags"] == ["lighthouse", "mystery"]
    assert data["first_mes"].startswith("*{{char}} opens the door")


def test_read_card_v1_flat():
    data = read_card(V1_FILE)
    assert data["name"] == "Orla Venn"
    assert data["first_mes"] == "The causeway closes in forty minutes, <USER>."
    assert data["system_prompt"] == "" and data["tags"] == []


def test_read_card_prefers_chara_over_ccv3(tmp_path):
    path = write(tmp_path, "both.png", png(text_chunk(v2(), b"ccv3"), text_chunk(v2(name="Wren Hale"))))
    assert read_card(path)["name"] == "Wren Hale"


@pytest.mark.parametrize("field, value, expected", [
    ("tags", "tides, ledgers , ", ["tides", "ledgers"]),
    ("tags", None, []),
    ("personality", None, ""),
])
def test_read_card_normalises_loose_fields(tmp_path, field, value, expected):
    path = write(tmp_path, "card.json", json.dumps(v2(**{field: value})).encode())
    assert read_card(path)[field] == expected


BAD_UTF8 = json.dumps(v2(description="caf\u00e9"), ensure_ascii=False).encode("utf-8").replace(b"caf\xc3\xa9", b"caf\xe9")


@pytest.mark.parametrize("name, content, message, field", [
    ("card.txt", b"name: Orla", "expected a .png image or a .json file", None),
    ("card.png", b"GIF89a not a png", "is not a PNG image", None),
    ("empty.json", b"", "is empty", None),
    ("plain.png", png(), "has no embedded character card", None),
    ("other-text.png", png(chunk(b"tEXt", b"Comment\x00hello")), "has no embedded character card", None),
    ("cut.png", png(text_chunk(CARD))[:60], "damaged PNG", None),
    ("bad-b64.png", png(chunk(b"tEXt", b"chara\x00not*base64!")), "not valid base64", None),
    ("b64-not-json.png", png(chunk(b"tEXt", b"chara\x00" + base64.b64encode(b"hello there"))), "not valid JSON", None),
    ("b64-not-utf8.png", png(chunk(b"tEXt", b"chara\x00" + base64.b64encode(BAD_UTF8))), "not valid UTF-8", None),
    ("bad-zlib.png", png(chunk(b"zTXt", b"chara\x00\x00garbage")), "cannot be decoded", None),
    ("broken.json", b'{"name": "Orla",', "is not valid JSON", None),
    ("list.json", b'["Orla"]', "expected a JSON object", None),
    ("latin1.json", BAD_UTF8, "is not valid UTF-8", None),
    ("no-name.json", json.dumps({"spec": "chara_card_v2", "data": {"description": "x"}}).encode(), "has no character name", "data.name"),
    ("blank-name.json", json.dumps(v2(name="  ")).encode(), "has no character name", "data.name"),
    ("v1-no-name.json", b'{"description": "a keeper"}', "has no character name", "name"),
    ("no-name.png", png(text_chunk({"spec": "chara_card_v2", "data": {}})), "has no character name", "data.name"),
    ("spec.json", json.dumps({"spec": "risu_card", "data": {"name": "Orla"}}).encode(), "unsupported card spec", "spec"),
    ("no-data.json", b'{"spec": "chara_card_v2", "data": "Orla"}', "without a 'data' object", "data"),
    ("number.json", json.dumps(v2(first_mes=3)).encode(), "must be text", "data.first_mes"),
    ("tags.json", json.dumps(v2(tags=[1, 2])).encode(), "list of text tags", "data.tags"),
])
def test_read_card_errors(tmp_path, name, content, message, field):
    path = write(tmp_path, name, content)
    with pytest.raises(FileProblem) as caught:
        read_card(path)
    assert message in caught.value.problem
    assert caught.value.path == str(path) and str(path) in str(caught.value)
    assert caught.value.field == field


def test_read_card_json_error_has_line(tmp_path):
    path = write(tmp_path, "broken.json", b'{\n  "name": "Orla",\n  oops\n}')
    with pytest.raises(FileProblem) as caught:
        read_card(path)
    assert caught.value.line == 3


def test_read_card_missing_file(tmp_path):
    with pytest.raises(FileProblem, match="cannot be read"):
        read_card(tmp_path / "gone.png")


# ---------------------------------------------------------------- converting


def test_persona_from_v2_card():
    persona = persona_from_card(read_card(V2_FILE))
    assert persona.name == "Orla Venn"
    assert persona.description == "Orla Venn keeps the lighthouse on Gullstone, a tidal island cut off twice a day."
    assert persona.greeting == "*Orla Venn opens the door a hand's width.* The causeway closes in forty minutes, User. Talk fast."
    assert persona.tags == ["lighthouse", "mystery", "imported"]
    assert persona.system_prompt == (
        "Orla Venn keeps the lighthouse on Gullstone, a tidal island cut off twice a day.\n"
        "She catalogues every shipwreck on the reef in a ledger bound with sailcloth, and she distrusts anyone who arrives at high tide.\n\n"
        "Personality: dry, patient, exact about tides and dates; warms to User slowly\n\n"
        "Scenario: User has walked across the causeway at low tide and knocked on the lighthouse door."
    )
    assert persona.seed_messages == [
        Message(role="user", content="What's in the ledger?"),
        Message(role="assistant", content="Names of ships. Dates. What the reef took from each.\nAnd what it gave back, which is less."),
        Message(role="user", content="Do you ever leave the island?"),
        Message(role="assistant", content="Every spring tide. I go as far as the post office and no further."),
    ]
    # defaults untouched: nothing but the mapped fields differs from a bare persona
    bare = Persona(name="Orla Venn")
    assert persona.params == bare.params and persona.model is None and persona.mode == "chat"
    assert persona.speaker is None and persona.dataset is None and persona.variables == {}


def test_persona_from_v1_card():
    persona = persona_from_card(read_card(V1_FILE))
    assert persona.description == "Orla Venn keeps the lighthouse on Gullstone, a tidal island cut off twice a day."
    assert persona.greeting == "The causeway closes in forty minutes, User."
    assert persona.seed_messages == [Message(role="user", content="What's in the ledger?"),
                                     Message(role="assistant", content="Names of ships.")]
    assert persona.tags == ["imported"]
    assert persona.variable_names() == []


@pytest.mark.parametrize("text, expected", [
    ("{{char}} waves at {{user}}.", "Orla Venn waves at User."),
    ("{{Char}} and {{USER}}", "Orla Venn and User"),
    ("{{ char }} / {{ user }}", "Orla Venn / User"),
    ("<BOT> greets <USER>", "Orla Venn greets User"),
    ("<bot> greets <user>", "Orla Venn greets User"),
    ("{{charname}} and {{username}} stay", "{{charname}} and {{username}} stay"),
    ("no macros", "no macros"),
])
def test_replace_macros(text, expected):
    assert replace_macros(text, "Orla Venn") == expected


def test_macros_replaced_in_every_text():
    card = v2(description="{{char}} watches {{user}}.", personality="<BOT> likes <USER>", scenario="{{User}} arrives",
              first_mes="Hello {{user}}, I am {{char}}.", post_history_instructions="Speak only as {{char}}.",
              mes_example="<START>\n{{user}}: Hi {{char}}\n{{char}}: Hi {{user}}")["data"]
    persona = persona_from_card(card)
    texts = [persona.description, persona.greeting] + [m.content for m in persona.messages]
    assert all("{{" not in t and "<BOT>" not in t and "<USER>" not in t for t in texts)
    assert persona.greeting == "Hello User, I am Orla Venn."
    assert [m.content for m in persona.seed_messages] == ["Hi Orla Venn", "Hi User"]
    assert "Orla Venn likes User" in persona.system_prompt and "Scenario: User arrives" in persona.system_prompt


@pytest.mark.parametrize("fields, expected", [
    ({"system_prompt": "You are {{char}}. Stay terse.", "description": "A keeper."}, "You are Orla Venn. Stay terse."),
    ({"system_prompt": "   ", "description": "A keeper."}, "A keeper."),
    ({"description": "A keeper.", "personality": "dry", "scenario": "night"}, "A keeper.\n\nPersonality: dry\n\nScenario: night"),
    ({"personality": "dry"}, "Personality: dry"),
    ({"scenario": "night"}, "Scenario: night"),
    ({"description": "A keeper.", "post_history_instructions": "Never break character."}, "A keeper.\n\nNever break character."),
    ({"system_prompt": "Be {{char}}.", "post_history_instructions": "Reply in one paragraph."}, "Be Orla Venn.\n\nReply in one paragraph."),
    ({"system_prompt": "{{original}}\n\nNo modern slang.", "description": "A keeper."}, "A keeper.\n\nNo modern slang."),
    ({"description": "A keeper.", "post_history_instructions": "{{original}}"}, "A keeper."),
])
def test_system_prompt(fields, expected):
    persona = persona_from_card({"name": "Orla Venn", **fields})
    assert persona.messages[0] == Message(role="system", content=expected)
    assert persona.system_prompt == expected


def test_no_system_prompt_when_card_has_none():
    persona = persona_from_card({"name": "Orla Venn", "mes_example": "{{user}}: Hi\n{{char}}: Hello"})
    assert persona.system_prompt == ""
    assert persona.messages == [Message(role="user", content="Hi"), Message(role="assistant", content="Hello")]


U, A = "user", "assistant"


@pytest.mark.parametrize("example, expected", [
    ("", []),
    ("<START>", []),
    ("{{user}}: Hi\n{{char}}: Hello", [(U, "Hi"), (A, "Hello")]),
    ("<START>\n{{user}}: One\n{{char}}: Two\n<START>\n{{user}}: Three\n{{char}}: Four\n<START>\n{{char}}: Five",
     [(U, "One"), (A, "Two"), (U, "Three"), (A, "Four"), (A, "Five")]),
    ("<START>\n{{user}}: Tell me\nabout the reef.\n{{char}}: It's sharp.\n\nIt's patient.\n*She taps the ledger.*",
     [(U, "Tell me\nabout the reef."), (A, "It's sharp.\n\nIt's patient.\n*She taps the ledger.*")]),
    ("<start>\r\n<USER>: Hi\r\n<BOT>: Hello\r\n", [(U, "Hi"), (A, "Hello")]),
    ("{{User}}:Hi\n{{CHAR}}:Hello", [(U, "Hi"), (A, "Hello")]),
    ("<START>\nOrla Venn: I use my own name.\n{{user}}: Fine.", [(A, "I use my own name."), (U, "Fine.")]),
    ("<START>\nA scene note before anyone speaks.\n{{user}}: Hi", [(U, "Hi")]),
    ("<START>\n{{user}}:\n{{char}}: Silence first.", [(A, "Silence first.")]),
    ("<START>\n{{user}}: Who are you?\n{{char}}: {{char}}, and you are {{user}}.",
     [(U, "Who are you?"), (A, "Orla Venn, and you are User.")]),
    ("{{user}}: It's 10:30 and {{char}}: is here", [(U, "It's 10:30 and Orla Venn: is here")]),
])
def test_parse_examples(example, expected):
    assert [(m.role, m.content) for m in parse_examples(example, "Orla Venn")] == expected


@pytest.mark.parametrize("texts, expected", [
    (("First line.\nSecond line.",), "First line."),
    (("\n\n  Padded first line.  \nMore",), "Padded first line."),
    (("", "From personality."), "From personality."),
    (("", ""), ""),
    (("word " * 60,), ("word " * 39).strip() + "…"),
    (("x" * 250,), "x" * 199 + "…"),
    (("y" * 200,), "y" * 200),
])
def test_short_description(texts, expected):
    result = short_description(*texts)
    assert result == expected
    assert len(result) <= 200


def test_tags_deduplicated_and_imported_once():
    persona = persona_from_card({"name": "Orla", "tags": ["sea", " sea ", "", "imported"]})
    assert persona.tags == ["sea", "imported"]


def test_alternate_greetings_and_book_dropped():
    persona = persona_from_card(read_card(V2_FILE))
    dumped = json.dumps(persona.model_dump(mode="json"))
    assert "lamp room" not in dumped and "character_book" not in dumped and "playground-tests" not in dumped


@pytest.mark.parametrize("card", [{}, {"name": ""}, {"name": "   "}, {"name": None}])
def test_persona_from_card_needs_name(card):
    with pytest.raises(FileProblem, match="has no character name") as caught:
        persona_from_card(card, source="cards/nameless.png")
    assert caught.value.path == "cards/nameless.png"


# ---------------------------------------------------------------- importing


@pytest.mark.parametrize("name, slug", [
    ("Orla Venn", "orla-venn"),
    ("Zoë Ærwin!", "zoe-aerwin"),
    ("  --Captain  O'Hara--  ", "captain-o-hara"),
    ("灯台守", "character"),
    ("A" * 100, "a" * 60),
])
def test_slugify(name, slug):
    assert slugify(name) == slug


@pytest.mark.parametrize("source", ["json", "png"])
def test_import_card_round_trips(tmp_path, source):
    card_path = V2_FILE if source == "json" else write(tmp_path, "orla.png", png(text_chunk(CARD)))
    personas_dir = tmp_path / "personas"
    written = import_card(card_path, personas_dir)
    assert written == personas_dir / "orla-venn.json"
    data = json.loads(written.read_text(encoding="utf-8"))
    assert list(data)[0] == "name" and data["name"] == "Orla Venn"
    assert "temperature" not in data and "model" not in data  # defaults left out
    assert written.read_text(encoding="utf-8").startswith('{\n  "name": "Orla Venn",\n')
    assert load_persona(written) == persona_from_card(read_card(V2_FILE))


def test_import_card_never_overwrites(tmp_path):
    personas_dir = tmp_path / "personas"
    personas_dir.mkdir()
    mine = personas_dir / "orla-venn.json"
    mine.write_text('{"name": "My own Orla"}', encoding="utf-8")
    paths = [import_card(V2_FILE, personas_dir) for _ in range(3)]
    assert paths == [personas_dir / "orla-venn-2.json", personas_dir / "orla-venn-3.json", personas_dir / "orla-venn-4.json"]
    assert mine.read_text(encoding="utf-8") == '{"name": "My own Orla"}'
    assert [load_persona(p).name for p in paths] == ["Orla Venn", "Orla Venn (2)", "Orla Venn (3)"]
    personas, problems = load_personas(personas_dir)
    assert problems == []
    assert sorted(personas) == ["My own Orla", "Orla Venn", "Orla Venn (2)", "Orla Venn (3)"]


def test_import_card_keeps_unicode_and_creates_folder(tmp_path):
    card_path = write(tmp_path, "zoe.json", json.dumps(v2(name="Zoë Ærwin", first_mes="Bonjour, {{user}} — ça va?")).encode())
    written = import_card(card_path, tmp_path / "new" / "personas")
    assert written.name == "zoe-aerwin.json"
    assert "Zoë Ærwin" in written.read_text(encoding="utf-8")
    assert load_persona(written).greeting == "Bonjour, User — ça va?"


def test_import_card_bad_file_writes_nothing(tmp_path):
    personas_dir = tmp_path / "personas"
    with pytest.raises(FileProblem, match="has no embedded character card"):
        import_card(write(tmp_path, "plain.png", png()), personas_dir)
    assert not personas_dir.exists() or list(personas_dir.iterdir()) == []
