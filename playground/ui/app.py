"""The app: one Blocks with a tab per capability, wired to services passed in."""

import gradio as gr

from ..demo import DemoSettings
from ..personas import persona_order
from ..services import Services
from .ab_tab import build_ab_tab
from .chat_tab import build_chat_tab
from .datasets_tab import build_datasets_tab
from .demo_app import build_demo_app
from .finetune_tab import build_finetune_tab
from .history_tab import build_history_tab
from .templates_tab import build_templates_tab

LAUNCH_DEFAULTS = {
    # Gradio's run history keeps inputs in the browser's localStorage; keys and chats must not end up there.
    "run_history": False,
    "theme": gr.themes.Soft(),
    "css": "#chat-notice:empty{display:none}",
}


# What the host keeps to itself: the log and settings, and the files a fine-tuning job was made from.
PRIVATE_FILES = ("playground.db", "playground.db-wal", "playground.db-shm", "providers.json", "prices.json", "finetune")


def launch_options(services: Services) -> dict:
    """LAUNCH_DEFAULTS plus file access: downloads come only from HOME/exports, never from the rest of HOME."""
    exports = services.home / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    private = {services.home / name for name in PRIVATE_FILES}
    private |= {p for p in services.home.iterdir() if p != exports}
    return {**LAUNCH_DEFAULTS, "allowed_paths": [str(exports)], "blocked_paths": sorted(str(p) for p in private)}


def persona_lists(services: Services):
    """A handler giving persona dropdowns today's personas, each keeping its choice while that persona exists."""
    def refresh(*chosen):
        names = persona_order(services.personas)
        updates = [gr.update(choices=names, value=c if c in services.personas else (names[0] if names else None))
                   for c in chosen]
        return updates[0] if len(updates) == 1 else updates
    return refresh


def build_app(services: Services, demo: DemoSettings | None = None) -> gr.Blocks:
    """The full app; with `demo`, only demo mode's chat (see playground/demo.py)."""
    if demo is not None:
        return build_demo_app(services, demo)
    with gr.Blocks(title="Playground", analytics_enabled=False) as demo:
        gr.Markdown("## Playground · chat → compare → curate → train")
        if services.problems:
            gr.Markdown("⚠️ **Some files could not be used:**\n" + "\n".join(f"- {p}" for p in services.problems))
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat") as chat_page:
                chat = build_chat_tab(services)
            with gr.Tab("A/B", id="ab") as ab_page:
                ab_personas = build_ab_tab(services)
            with gr.Tab("Templates", id="templates"):
                build_templates_tab(services)
            with gr.Tab("Datasets", id="datasets"):
                build_datasets_tab(services, chat)
            with gr.Tab("Fine-tune", id="finetune"):
                build_finetune_tab(services)
            with gr.Tab("History", id="history") as history:
                build_history_tab(services, chat, tabs, history)
        # A persona saved in Templates (or imported) joins the lists the next time their tab is opened.
        chat_page.select(persona_lists(services), [chat.persona], [chat.persona], api_visibility="private",
                         show_progress="hidden")
        ab_page.select(persona_lists(services), ab_personas, ab_personas, api_visibility="private",
                       show_progress="hidden")
    demo.queue(default_concurrency_limit=16)
    return demo
