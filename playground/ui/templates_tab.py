"""The template editor: being built (placeholder wiring point for its tab)."""

import gradio as gr

from ..services import Services


def build_templates_tab(services: Services) -> None:
    gr.Markdown("The template editor arrive in the next release.")
