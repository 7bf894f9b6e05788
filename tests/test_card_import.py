"""Importing a Character Card as a persona, as a user does it: the CLI and the Chat tab's upload."""

import json
import shutil
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from playground.chat.personas import load_personas
from playground.cli import main
from tests.conftest import write_providers

CARD = Path(__file__).parent / "fixtures" / "cards" / "orla_venn_v2.json"
PROJECT = Path(__file__).parent.parent


def test_the_cli_writes_a_persona_that_loads(tmp_path, capsys):
    assert main(["persona", "import", str(CARD), "--personas-dir", str(tmp_path)]) == 0

    personas, problems = load_personas(tmp_path)
    assert problems == []
    assert list(personas) == ["Orla Venn"]
    assert "Orla Venn" in capsys.readouterr().out


def test_the_cli_names_a_file_that_is_not_a_card(tmp_path, capsys):
    not_a_card = tmp_path / "notes.txt"
    not_a_card.write_text("hello", encoding="utf-8")

    assert main(["persona", "import", str(not_a_card), "--personas-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "notes.txt" in err and "character card" in err


@pytest.fixture
def app_with_own_personas(_home, fake_server, tmp_path):
    from playground.services import build_services
    from playground.ui.app import LAUNCH_DEFAULTS, build_app, launch

    personas_dir = tmp_path / "personas"
    shutil.copytree(PROJECT / "personas", personas_dir)
    write_providers(_home, fake_server)
    services = build_services(home=_home, personas_dir=personas_dir, environ={"LOCAL_KEY": "sk-test"},
                              detect_local=False)
    demo = build_app(services)
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **LAUNCH_DEFAULTS)
    yield services, url, personas_dir
    demo.close()


def test_an_uploaded_card_becomes_a_persona_to_chat_with_at_once(app_with_own_personas):
    services, url, personas_dir = app_with_own_personas
    client = Client(url, verbose=False)

    persona_update, notice = client.predict(handle_file(str(CARD)), api_name="/import_card")

    assert "Orla Venn" in notice
    assert "Orla Venn" in [c[0] if isinstance(c, (list, tuple)) else c for c in persona_update["choices"]]
    assert (personas_dir / "orla-venn.json").is_file()
    saved = json.loads((personas_dir / "orla-venn.json").read_text(encoding="utf-8"))
    assert saved["name"] == "Orla Venn"

    chat = client.predict("Is the lamp lit?", "Orla Venn", "local:gpt-4o-mini", services.personas["Orla Venn"].system_prompt,
                          {"headers": ["variable", "value"], "data": [["", ""]]}, 0.7, 1, 64, 0, 0, None, "[]",
                          api_name="/send")
    assert "Echo: Is the lamp lit?" in json.dumps(chat[0][-1])
    assert services.store.exchanges()[0]["persona"] == "Orla Venn"


def test_a_broken_card_upload_says_what_is_wrong_and_adds_nothing(app_with_own_personas, tmp_path):
    services, url, personas_dir = app_with_own_personas
    broken = tmp_path / "broken.json"
    broken.write_text('{"spec": "chara_card_v2", "data": {', encoding="utf-8")
    before = sorted(p.name for p in personas_dir.iterdir())

    _, notice = Client(url, verbose=False).predict(handle_file(str(broken)), api_name="/import_card")

    assert "broken.json" in notice and "JSON" in notice
    assert sorted(p.name for p in personas_dir.iterdir()) == before
