"""Fine-tuning jobs: being built (placeholder wiring point for its tab)."""

import gradio as gr

from ..services import Services


def build_finetune_tab(services: Services) -> None:
    gr.Markdown("Fine-tuning jobs arrive in the next release.")
