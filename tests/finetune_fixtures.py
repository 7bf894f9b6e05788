"""Datasets and services for the fine-tuning tests, against the loopback fine-tuning server."""

from pathlib import Path

from playground.chat.services import Services
from playground.core.store import Store
from playground.datasets.examples import Example, TrainingMessage
from playground.datasets.store import add_examples, create_dataset
from playground.services import build_services
from tests.conftest import write_providers

SYSTEM = "Answer questions about Brindlecombe in a few words."
QUESTIONS = [
    "Who founded the town?", "What river runs past it?", "How old is the mill?", "Where is the chapel?",
    "When is market day?", "Does the ferry run at night?", "How tall is the lighthouse?", "Who keeps the granary?",
    "Why did the tannery close?", "What grows in the orchard?", "Which inn is oldest?", "How many bridges are there?",
    "What colour is the town hall?", "Who rings the bell?", "Where do the swans nest?", "What is the fair called?",
]


def town_examples(n: int = 15, system: bool = True, answer: str = "Answer {i}.") -> list[Example]:
    examples = []
    for i, question in enumerate(QUESTIONS[:n]):
        messages = [TrainingMessage(role="user", content=question),
                    TrainingMessage(role="assistant", content=answer.format(i=i))]
        if system:
            messages.insert(0, TrainingMessage(role="system", content=SYSTEM))
        examples.append(Example(messages=messages))
    return examples


def add_dataset(store: Store, name: str, examples: list[Example]) -> None:
    create_dataset(store, name, "Questions about Brindlecombe.")
    add_examples(store, name, examples)


def ft_services(home: Path, server) -> Services:
    """Services on `home` whose one endpoint, 'local', is the server; built twice on one home = a restart."""
    if not (home / "providers.json").exists():
        write_providers(home, server, timeout=5)
    services = build_services(home=home, environ={"LOCAL_KEY": "sk-test"}, detect_local=False, discover=False)
    services.registry.refresh()
    return services
