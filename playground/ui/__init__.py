"""The Gradio UI: thin wiring per tab. Only this package imports gradio."""
