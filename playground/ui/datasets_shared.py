"""What the Datasets tab's sections share: the chosen dataset, the checks' settings, the list of datasets.

Apart from datasets_tab.py so the sections (dataset_checks, log_review) import it without importing the tab.
"""

from dataclasses import dataclass

import gradio as gr

from ..chat.services import Services
from ..datasets.store import list_datasets

DATASET_COLUMNS = ["dataset", "examples", "excluded", "tokens", "description", "created"]


@dataclass
class DatasetsTab:
    """What the other sections of the tab share: the chosen dataset and the checks' model and deploy prompt."""

    dataset: gr.Dropdown
    datasets: gr.Dataframe
    model: gr.Dropdown
    deploy_prompt: gr.Textbox
    tokenizer: gr.Textbox  # an open model's local tokenizer.json or Hugging Face cache folder; replaces Model's
    context: gr.Number  # the training context in tokens; 0 = the model's own


def dataset_rows(services: Services) -> list[list]:
    return [[d.name, d.examples, d.excluded, d.tokens, d.description, d.created_at[:19].replace("T", " ")]
            for d in list_datasets(services.store)] or [[""] * len(DATASET_COLUMNS)]


def dataset_choices(services: Services) -> list[str]:
    return [d.name for d in list_datasets(services.store)]
