"""The one error path: a handler's PlaygroundError is shown as a notice, anything else is left to Gradio."""

import inspect

import pytest

from playground.core.errors import PlaygroundError
from playground.ui.handlers import guarded
from playground.ui.lists import filled_rows, shown_time, table_rows

NOTICE = "notice-component"  # any hashable stands in for a component as a dict key


def refuse(name, size=3):
    raise PlaygroundError(f"No dataset named {name!r}: pick one from the list.\n  line 2: more detail")


def test_a_refusal_becomes_the_notice_and_extra_updates():
    handler = guarded(refuse, NOTICE, extra={"table": []})
    assert handler("x") == {NOTICE: "⚠️ **No dataset named 'x': pick one from the list.\n  line 2: more detail**",
                            "table": []}


def test_first_line_only_and_extra_built_from_the_error():
    handler = guarded(refuse, NOTICE, first_line=True, extra=lambda e: {"listing": str(e).splitlines()[1]})
    assert handler("x") == {NOTICE: "⚠️ **No dataset named 'x': pick one from the list.**",
                            "listing": "  line 2: more detail"}


def test_a_handler_whose_only_output_is_the_notice():
    assert guarded(refuse)("x").startswith("⚠️ **No dataset named 'x'")


def test_the_signature_is_kept_for_gradio_to_pass_inputs():
    assert list(inspect.signature(guarded(refuse, NOTICE)).parameters) == ["name", "size"]


def test_a_streaming_handler_stays_a_generator_and_keeps_what_it_yielded():
    def stream(text):
        yield {"reply": text[:2]}
        raise PlaygroundError("The model went away: try again.")

    handler = guarded(stream, NOTICE)
    assert inspect.isgeneratorfunction(handler)
    assert list(handler("hello")) == [{"reply": "he"}, {NOTICE: "⚠️ **The model went away: try again.**"}]


def test_bugs_are_not_hidden():
    def broken():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        guarded(broken, NOTICE)()


def test_shared_table_helpers():
    import pandas as pd

    frame = pd.DataFrame([[1, "a"], ["", ""]], columns=["id", "name"])
    assert table_rows(frame) == [[1, "a"], ["", ""]]
    assert table_rows({"data": [[1, "a"]], "headers": ["id", "name"]}) == [[1, "a"]]
    assert table_rows(None) == []
    assert filled_rows(table_rows(frame)) == [[1, "a"]]
    assert shown_time("2026-12-03T10:04:05.123+00:00") == "2026-12-03 10:04:05"
    assert shown_time(None) == ""
