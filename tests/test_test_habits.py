"""Habits the suite keeps so that it holds on a busy machine (CI runs beside other work)."""

import re
from pathlib import Path

TESTS = Path(__file__).parent


def test_apps_are_launched_through_the_patient_launch_helper():
    # Gradio refuses to start when its own first request to the new server takes over 3 s, which a loaded machine
    # does; playground.ui.app.launch starts it again. A bare app.launch(...) in a test fails only when CI is busy.
    bare = [f"{path.name}:{n}" for path in sorted(TESTS.glob("*.py")) if path.name != Path(__file__).name
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(r"\b\w+\.launch\(prevent_thread_lock", line)]
    assert bare == [], f"use playground.ui.app.launch(app, ...) instead of app.launch(...) at {bare}"
