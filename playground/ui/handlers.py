"""The one error path for event handlers: a PlaygroundError becomes a notice on screen, never a traceback.

Handlers raise; the wiring wraps them once with `guarded`. A PlaygroundError carries a message written for the
user (what went wrong and what to do), so it is shown as it is; anything else is a bug and is left to Gradio,
which logs it and shows its generic error.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

from ..core.errors import PlaygroundError
from .format import error_notice

# What else to show when a handler fails: fixed updates, or updates built from the error (say, clearing a table
# so an earlier result is not mistaken for this one's).
Extra = dict | Callable[[PlaygroundError], dict] | None


def guarded(handler: Callable, notice: Any = None, *, toast: bool = False, extra: Extra = None,
            first_line: bool = False) -> Callable:
    """`handler` with its PlaygroundErrors shown as a notice.

    notice: the component that shows the message; the handler then returns (or yields) a dict of updates.
            None when the handler's single output is the notice itself.
    toast:  also pop up a warning, for errors the user may not see where the notice sits.
    extra:  more updates on failure (a dict, or a function of the error).
    first_line: show only the first line (the rest, a listing, is in `extra`).
    The wrapper keeps the handler's signature (Gradio reads it to pass inputs) and its kind: a generator
    handler stays a generator, so streaming handlers are guarded the same way.
    """

    def failed(error: PlaygroundError):
        message = str(error).splitlines()[0] if first_line else str(error)
        if toast:
            gr.Warning(message)
        if notice is None:
            return error_notice(message)
        more = extra(error) if callable(extra) else (extra or {})
        return {notice: error_notice(message), **more}

    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def stream(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except PlaygroundError as e:
                yield failed(e)
        return stream

    @functools.wraps(handler)
    def call(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except PlaygroundError as e:
            return failed(e)
    return call
