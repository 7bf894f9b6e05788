"""Two app processes on one home folder (docs/scaling.md): the shared SQLite file, in WAL mode, loses nothing."""

import json
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing

from playground.core.store import Store
from tests.conftest import PROJECT_ROOT, write_providers

SESSIONS, TURNS = 10, 2

# One app process's worth of visitors: SESSIONS chats at once, each TURNS streamed replies, through the same
# domain calls the Chat tab makes (stream_reply logs each exchange and saves the conversation).
VISITORS = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from playground.chat.ask import ChatSettings, stream_reply
    from playground.core.coalesce import coalesce
    from playground.chat.conversation import Conversation
    from playground.services import build_services

    home, personas, label, sessions, turns = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:6])
    services = build_services(home=home, personas_dir=personas, environ={"LOCAL_KEY": "sk-test"}, detect_local=False)
    services.registry.refresh()
    persona = services.personas["Location Extractor"]
    settings = ChatSettings.for_persona(persona, "local:gpt-4o-mini")
    problems = []

    def visit(n):
        conversation = Conversation.start("")
        for turn in range(turns):
            conversation.add_user(f"{label} session {n} turn {turn} [tokens=30]")
            for _ in coalesce(stream_reply(services, persona, settings, conversation)):
                pass
            if conversation.turns[-1].error:
                problems.append(conversation.turns[-1].error)

    threads = [threading.Thread(target=visit, args=(n,)) for n in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(len(problems), *problems, sep="\\n")
""")


def test_two_processes_on_one_home_log_every_exchange_once(_home, fake_server):
    fake_server.token_delay = 0.002  # the two processes' writes interleave while replies stream
    write_providers(_home, fake_server, timeout=10)
    Store(_home / "playground.db")  # created (migrated) once, as the first process to start would
    processes = [subprocess.Popen([sys.executable, "-c", VISITORS, str(_home), str(PROJECT_ROOT / "personas"), label,
                                   str(SESSIONS), str(TURNS)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for label in ("p1", "p2")]
    outputs = [p.communicate(timeout=300) for p in processes]

    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        assert out.splitlines()[0] == "0", out
    store = Store(_home / "playground.db")
    exchanges = store.exchanges(limit=1000)
    asked = sorted(e["request"]["messages"][-1]["content"] for e in exchanges)
    expected = sorted(f"{label} session {n} turn {turn} [tokens=30]"
                      for label in ("p1", "p2") for n in range(SESSIONS) for turn in range(TURNS))
    assert asked == expected  # every exchange logged, and once
    assert all(e["reply"].split() == [f"w{i}" for i in range(1, 31)] and e["error"] is None for e in exchanges)
    with closing(sqlite3.connect(_home / "playground.db")) as db:
        transcripts = [json.loads(t) for (t,) in db.execute("select transcript from conversations")]
    assert len(transcripts) == 2 * SESSIONS
    assert all(len(t) == 2 * TURNS for t in transcripts)
