"""The app: one Blocks with a tab per capability, wired to services passed in."""

from pathlib import Path

import gradio as gr

from ..chat.personas import persona_order
from ..chat.services import Services
from ..sharing.demo import DemoSettings
from ..sharing.serving import MAX_UPLOAD_MB
from .ab_tab import build_ab_tab
from .chat_tab import build_chat_tab
from .datasets_tab import build_datasets_tab
from .demo_app import build_demo_app
from .finetune_tab import build_finetune_tab
from .history_tab import build_history_tab
from .templates_tab import build_templates_tab
from .web_guard import WebPolicy, web_middleware

# Read once at import: the look is part of the code, not a setting.
STYLE = (Path(__file__).parent / "style.css").read_text(encoding="utf-8")

LAUNCH_DEFAULTS = {
    # Gradio's run history keeps inputs in the browser's localStorage; keys and chats must not end up there.
    "run_history": False,
    "theme": gr.themes.Soft(),
    "css": STYLE,
    # A streaming sync handler holds a worker thread for its whole reply; Gradio's default 40 would queue the 41st.
    "max_threads": 128,
}
# Streams one event may run at once (Chat /send, A/B rounds...): one process serves ~32-64 (docs/scaling.md).
CONCURRENT_STREAMS = 64


LAUNCH_ATTEMPTS = 3

# What the host keeps to itself: the log and settings, and the files a fine-tuning job was made from.
PRIVATE_FILES = ("playground.db", "playground.db-wal", "playground.db-shm", "providers.json", "prices.json", "finetune")


def launch_options(services: Services, *, demo: bool = False, remote_media: bool = False,
                   max_upload_mb: int = MAX_UPLOAD_MB) -> dict:
    """LAUNCH_DEFAULTS plus what the server lets through: downloads only from HOME/exports, never from the rest of
    HOME; uploads up to a size (none in demo mode); the login wall and the no-remote-media policy (web_guard.py)."""
    exports = services.home / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    private = {services.home / name for name in PRIVATE_FILES}
    private |= {p for p in services.home.iterdir() if p != exports}
    policy = WebPolicy(remote_media=remote_media, uploads=not demo)
    return {**LAUNCH_DEFAULTS, "allowed_paths": [str(exports)], "blocked_paths": sorted(str(p) for p in private),
            "max_file_size": 0 if demo else max_upload_mb * 1024 * 1024,
            # A fresh dict each time: Gradio adds its own keys to it.
            "app_kwargs": {"middleware": [web_middleware(policy)]}}


def launch(app: gr.Blocks, **options) -> tuple:
    """`app.launch(**options)`, patient with a busy machine.

    Right after starting its server Gradio sends it one HEAD request with a 3 s timeout and, if that times out,
    refuses to start ("When localhost is not accessible, a shareable link must be created"). On a loaded
    machine the first request can take longer than that; the server is fine, so close it and start again.
    """
    for _ in range(LAUNCH_ATTEMPTS - 1):
        try:
            return app.launch(**options)
        except ValueError as e:
            if "localhost is not accessible" not in str(e):
                raise
            app.close()
    return app.launch(**options)


def persona_lists(services: Services):
    """A handler giving persona dropdowns today's personas, each keeping its choice while that persona exists."""
    def refresh(*chosen):
        names = persona_order(services.personas)
        # A choice that still exists is not sent back: on a busy server this answer can arrive after the user has
        # picked another persona, and sending the old value would undo the pick.
        updates = [gr.update(choices=names) if c in services.personas
                   else gr.update(choices=names, value=names[0] if names else None) for c in chosen]
        return updates[0] if len(updates) == 1 else updates
    return refresh


def build_app(services: Services, demo: DemoSettings | None = None) -> gr.Blocks:
    """The full app; with `demo`, only demo mode's chat (see playground/sharing/demo.py)."""
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
    demo.queue(default_concurrency_limit=CONCURRENT_STREAMS)
    return demo
