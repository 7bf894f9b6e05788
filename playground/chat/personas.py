"""Personas: templates with a name, a greeting, an optional speaker and a linked dataset."""

import re
from pathlib import Path

from pydantic import Field, field_validator

from ..core.errors import FileProblem
from ..core.prompts import Template, parse_model_file

# A name of one to three capitalised words before a colon. "Note: ..." also matches; "Quick question: ..."
# does not. Typing the persona's own speaker name always works.
NAMED_SPEAKER = re.compile(r"^[A-Z][\w.'-]*(?: [A-Z][\w.'-]*){0,2}: ")


class Persona(Template):
    name: str = Field(min_length=1)
    description: str = ""
    greeting: str = Field("", description="First assistant message shown when a chat starts.")
    speaker: str | None = Field(None, description='Prefixes each user turn as "Name: ...", as the persona was trained.')
    dataset: str | None = Field(None, description="A file in datasets/ with this persona's example dialogues.")
    deploy_prompt: str | None = Field(None, description="The short system prompt the fine-tuned model will be deployed with.")
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _not_blank(cls, name: str) -> str:
        # A blank name cannot be picked, told apart or saved to a file name.
        if not name.strip():
            raise ValueError("is blank: give the persona a name")
        return name

    def speaker_prefixed(self, text: str, speaker: str | None = None) -> str:
        """Prefix the speaker (`speaker` when given, "" for none, else the persona's) unless the user named one
        ("Dez: ...", "Mrs. Halvorsen: ...")."""
        name = self.speaker if speaker is None else speaker.strip()
        if not name or NAMED_SPEAKER.match(text):
            return text
        return f"{name}: {text}"


def load_persona(path: Path) -> Persona:
    return parse_model_file(Path(path), Persona)


def load_personas(folder: Path) -> tuple[dict[str, Persona], list[FileProblem]]:
    """Every persona in the folder by name; bad files are reported, never fatal."""
    personas: dict[str, Persona] = {}
    problems: list[FileProblem] = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            persona = load_persona(path)
        except FileProblem as problem:
            problems.append(problem)
            continue
        if persona.name in personas:
            problems.append(FileProblem(path, f"another persona is already named '{persona.name}'.", field="name"))
            continue
        personas[persona.name] = persona
    return personas, problems


def persona_order(personas: dict[str, Persona]) -> list[str]:
    """Names as the pickers list them: chat personas first, then completion ones (a base model's prompt text is
    not what a first chat expects), each alphabetically. The first is every picker's default."""
    return sorted(personas, key=lambda name: (personas[name].mode != "chat", name.casefold()))
