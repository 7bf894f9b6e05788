"""Controls for the sampling parameters, built from the pydantic fields so bounds live in one place."""

import json

import gradio as gr
from annotated_types import Ge, Le

from ..core.errors import PlaygroundError
from ..core.params import PARAM_NAMES, SamplingParams

LABELS = {"temperature": "Temperature", "top_p": "Top p", "max_tokens": "Max tokens", "seed": "Seed",
          "presence_penalty": "Presence penalty", "frequency_penalty": "Frequency penalty", "stop": "Stop sequences"}


def _bounds(name: str) -> tuple[float | None, float | None]:
    low = high = None
    for item in SamplingParams.model_fields[name].metadata:
        if isinstance(item, Ge):
            low = item.ge
        if isinstance(item, Le):
            high = item.le
    return low, high


def build_controls(initial: SamplingParams | None = None) -> dict[str, gr.components.Component]:
    """One control per parameter, showing `initial` (the first persona's values) rather than the bare defaults."""
    values = dict(zip(PARAM_NAMES, control_values(initial or SamplingParams())))
    controls = {}
    for name in PARAM_NAMES:
        field = SamplingParams.model_fields[name]
        low, high = _bounds(name)
        info = field.description
        if name == "stop":
            controls[name] = gr.Textbox(label=LABELS[name], info=info + ' A JSON list, e.g. ["\\n", "User:"].',
                                        value=values[name], max_lines=2)
        elif name == "seed":
            # A Textbox, not a Number: a Number shows (and then sends) 0 for no value once it is drawn.
            controls[name] = gr.Textbox(label=LABELS[name], info=info, value=values[name], max_lines=1,
                                        placeholder="none: a new sample each time")
        elif name == "max_tokens":
            controls[name] = gr.Number(label=LABELS[name], info=info, value=values[name], precision=0,
                                       minimum=low, maximum=high)
        else:
            controls[name] = gr.Slider(label=LABELS[name], info=info, minimum=low, maximum=high, step=0.05,
                                       value=values[name])
    return controls


def control_values(params: SamplingParams) -> list:
    values = params.model_dump()
    shown = {"stop": json.dumps(values["stop"]), "seed": "" if values["seed"] is None else str(values["seed"])}
    return [shown.get(n, values[n]) for n in PARAM_NAMES]


def parse_params(values: list) -> SamplingParams:
    raw = dict(zip(PARAM_NAMES, values))
    try:
        stop = json.loads(raw["stop"] or "[]")
    except json.JSONDecodeError:
        raise PlaygroundError('Stop sequences must be a JSON list of strings, e.g. ["\\n"].') from None
    if isinstance(stop, str):
        stop = [stop]
    raw["stop"] = stop
    seed = str(raw["seed"]).strip() if raw["seed"] is not None else ""
    if seed and not seed.isdigit():
        raise PlaygroundError(f"Seed: '{seed}' is not a whole number; write one (e.g. 7), or leave it empty.")
    raw["seed"] = int(seed) if seed else None
    try:
        return SamplingParams(**raw)
    except ValueError as e:
        first = e.errors()[0] if hasattr(e, "errors") else {"loc": ["?"], "msg": str(e)}
        name = LABELS.get(str(first["loc"][0]), str(first["loc"][0]))
        raise PlaygroundError(f"{name}: {first['msg']}.") from None
