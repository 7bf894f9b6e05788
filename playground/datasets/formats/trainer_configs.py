"""The trainer config written beside an export, so the files load with the right field mappings:
LLaMA-Factory's `dataset_info.json` for a sharegpt export, an Axolotl `datasets:` snippet (type chat_template)
for an openai-chat or trl-messages export.
"""

import json
from collections.abc import Iterable
from pathlib import Path

LLAMA_FACTORY_FILE = "dataset_info.json"
AXOLOTL_FILE = "axolotl.yml"
# LLaMA-Factory's ShareGPT convention (the turn names writers.py writes).
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}


def write_trainer_configs(out_dir: Path, files: Iterable[Path], format: str, examples: Iterable) -> list[Path]:
    """Write the config for the export's files; the paths written (none for formats without one)."""
    files = sorted(Path(f) for f in files)
    examples = list(examples)
    tools = any(e.tools is not None for e in examples)
    if format == "sharegpt":
        return [_write(Path(out_dir) / LLAMA_FACTORY_FILE, json.dumps(dataset_info(files, tools), indent=2) + "\n")]
    if format in ("openai-chat", "trl-messages"):
        weights = format == "openai-chat" and any(m.weight is not None for e in examples for m in e.conversation())
        return [_write(Path(out_dir) / AXOLOTL_FILE, axolotl_snippet(files, tools, weights))]
    return []


def dataset_info(files: list[Path], tools: bool) -> dict:
    """LLaMA-Factory's registry of the files: one entry per file, named after it."""
    columns = {"messages": "conversations"} | ({"tools": "tools"} if tools else {})
    return {f.stem: {"file_name": f.name, "formatting": "sharegpt", "columns": columns, "tags": SHAREGPT_TAGS}
            for f in files}


def axolotl_snippet(files: list[Path], tools: bool, weights: bool) -> str:
    """Axolotl's `datasets:` (the training file) and `test_datasets:` (validation/test files) for the export."""
    train = [f for f in files if f.stem not in ("validation", "test")]
    held_out = [f for f in files if f.stem in ("validation", "test")]
    lines = ["# Axolotl: merge into your config. Written by Playground beside the export it describes.",
             "# type chat_template renders each conversation with the model's chat template (tools included)."]
    for key, part in (("datasets", train), ("test_datasets", held_out)):
        if part:
            lines.append(f"{key}:")
            for f in part:
                lines += _entry(f, tools, weights)
    return "\n".join(lines) + "\n"


def _entry(file: Path, tools: bool, weights: bool) -> list[str]:
    entry = [f"  - path: {json.dumps(str(file.resolve()))}", "    ds_type: json", "    type: chat_template",
             "    field_messages: messages", "    message_property_mappings:", "      role: role",
             "      content: content", "    roles_to_train: [\"assistant\"]"]
    if tools:
        entry.append("    field_tools: tools")
    if weights:  # weight 0 turns are not trained on, as in OpenAI's format
        entry.append("    message_field_training: weight")
    return entry


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
