"""Datasets: being built (placeholder wiring point for its tab)."""

import gradio as gr

from ..services import Services


def build_datasets_tab(services: Services, chat) -> None:
    gr.Markdown("Datasets arrive in the next release.")
