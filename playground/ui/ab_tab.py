"""Side-by-side comparison: being built (placeholder wiring point for its tab)."""

import gradio as gr

from ..services import Services


def build_ab_tab(services: Services) -> None:
    gr.Markdown("Side-by-side comparison arrive in the next release.")
