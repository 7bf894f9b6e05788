"""Fine-tune tab: a job from a stored dataset, then its status, events, loss curves and checkpoints.

While any job is unfinished a timer asks the server about it every few seconds (at most once per interval,
however many pages are open); with none, the timer does nothing.
"""

import gradio as gr
from gradio.context import Context

from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..core.plural import plural
from ..datasets.examples import DEFAULT_MODEL
from ..datasets.splits import DEFAULT_RATIOS
from ..datasets.store import list_datasets
from ..finetune import jobs as finetune
from ..finetune.jobs import AvailabilityCache, NotReady, make_settings
from ..finetune.store import JobNotFound, active_jobs, list_jobs
from ..providers import ProviderError
from .finetune_format import (
    CHECKPOINT_COLUMNS,
    JOB_COLUMNS,
    availability_markdown,
    checkpoint_rows,
    events_text,
    job_rows,
    metric_frames,
    no_access_markdown,
    plan_markdown,
    status_markdown,
)
from .format import error_notice

POLL_S = 5.0


def dataset_choices(services: Services) -> list[tuple[str, str]]:
    return [(f"{d.name}  ·  {plural(d.examples, 'example')}", d.name) for d in list_datasets(services.store)]


def base_model_choices(services: Services) -> list[tuple[str, str]]:
    lookup = services.registry.lookup.name
    return [(label, value) for label, value in services.registry.choices() if not value.startswith(lookup + ":")]


def build_finetune_tab(services: Services) -> None:
    default_base = services.registry.default_model(DEFAULT_MODEL)
    probes = AvailabilityCache()  # one answer per endpoint for the app's life; a failed probe is asked again
    availability = gr.Markdown("", elem_id="finetune-availability")
    with gr.Row():
        with gr.Column(scale=2, min_width=340):
            dataset = gr.Dropdown(dataset_choices(services), value=None, label="Dataset", allow_custom_value=True,
                                  info="A stored dataset (import or curate one in the Datasets tab).")
            split = gr.Textbox(DEFAULT_RATIOS, label="Split", max_lines=1,
                               info="train/validation(/test) ratios, e.g. 80/20 or 70/15/15; test is not uploaded.")
            base = gr.Dropdown(base_model_choices(services), label="Base model", allow_custom_value=True,
                               value=None if default_base.startswith(services.registry.lookup.name) else default_base,
                               info="provider:model; the job runs on that endpoint.")
            with gr.Row():
                # A cleared number box sends 0, so 0 is what means "auto".
                epochs = gr.Number(0, label="Epochs", precision=0, minimum=0, maximum=50, info="0 = auto")
                batch_size = gr.Number(0, label="Batch size", precision=0, minimum=0, maximum=256, info="0 = auto")
                lr_multiplier = gr.Number(0, label="LR multiplier", minimum=0, maximum=10, info="0 = auto")
            with gr.Row():
                suffix = gr.Textbox("", label="Suffix", max_lines=1, info="Goes into the model's name.")
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, info="Split shuffle and job seed.")
            with gr.Row():
                estimate = gr.Button("Validate & estimate")
                start = gr.Button("Start fine-tuning", variant="primary")
        with gr.Column(scale=3):
            report = gr.Markdown("Pick a dataset and a base model, then **Validate & estimate**: nothing is uploaded "
                                 "until you press **Start fine-tuning**.", elem_id="finetune-report")
    jobs = gr.Dataframe(job_rows(list_jobs(services.store)), headers=JOB_COLUMNS,
                        label="Jobs (select one to follow it)", interactive=False, type="array", wrap=True)
    with gr.Row():
        job_id = gr.Textbox(label="Job", placeholder="ftjob-…", max_lines=1, scale=4)
        refresh = gr.Button("Refresh", scale=1)
        cancel = gr.Button("Cancel job", variant="stop", scale=1)
    status = gr.Markdown(status_markdown(None), elem_id="finetune-status")
    # Plots start empty (None), not with an empty frame: the page takes its colour legend from the first frame.
    with gr.Row():
        loss_plot = gr.LinePlot(None, x="step", y="value", color="series", y_title="loss", color_title="",
                                label="Loss", elem_id="finetune-loss")
        accuracy_plot = gr.LinePlot(None, x="step", y="value", color="series", y_title="token accuracy",
                                    color_title="", label="Token accuracy", elem_id="finetune-accuracy")
    checkpoints = gr.Dataframe(checkpoint_rows([]), headers=CHECKPOINT_COLUMNS, label="Checkpoints",
                               interactive=False, type="array")
    events = gr.Textbox("", label="Events (newest first)", lines=8, max_lines=16, interactive=False)
    timer = gr.Timer(POLL_S)

    form = [dataset, split, base, epochs, batch_size, lr_multiplier, suffix, seed]
    detail = [status, loss_plot, accuracy_plot, checkpoints, events]

    def settings_from(name, ratios, model, n_epochs, batch, lr, name_suffix, shuffle_seed):
        return make_settings(dataset=name or "", model=model or "", split=ratios or DEFAULT_RATIOS,
                             epochs=n_epochs or None, batch_size=batch or None, learning_rate_multiplier=lr or None,
                             suffix=(name_suffix or "").strip() or None, seed=shuffle_seed)

    def show(selected: str) -> dict:
        try:
            view = finetune.view(services, selected.strip()) if (selected or "").strip() else None
        except JobNotFound as e:
            return {status: error_notice(str(e))}
        loss, accuracy = metric_frames(view.metrics) if view and view.metrics else (None, None)
        return {status: status_markdown(view), loss_plot: loss, accuracy_plot: accuracy,
                checkpoints: checkpoint_rows(view.checkpoints if view else []),
                events: events_text(view.events if view else [])}

    def on_base(model, dataset_name):
        known = finetune.availability(services, model or "", probes)
        return {availability: availability_markdown(known, dataset_name),
                start: gr.update(interactive=known is None or known.offered is not False)}

    def on_estimate(*values):
        try:
            return plan_markdown(finetune.prepare(services, settings_from(*values)))
        except PlaygroundError as e:
            return error_notice(str(e))

    def on_start(*values):
        try:
            record = finetune.start(services, settings_from(*values))
        except NotReady as e:
            return {report: plan_markdown(e.plan)}
        except ProviderError as e:
            shown = no_access_markdown(str(e), values[0]) if e.kind == "no_finetuning" else error_notice(str(e))
            return {report: shown}
        except PlaygroundError as e:
            return {report: error_notice(str(e))}
        return {report: f"Started **{record.id}**: it is followed below and in `python -m playground finetune "
                        f"status {record.id}`.", jobs: job_rows(list_jobs(services.store)), job_id: record.id,
                **show(record.id)}

    def on_refresh(selected):
        selected = (selected or "").strip()
        notice = None
        if selected:
            try:
                finetune.refresh(services, selected)
            except PlaygroundError as e:
                notice = error_notice(str(e))
        updates = {jobs: job_rows(list_jobs(services.store)), **show(selected)}
        if notice:
            updates[status] = notice + "\n\n" + (updates.get(status) or "")
        return updates

    def on_cancel(selected):
        try:
            finetune.cancel(services, (selected or "").strip())
        except PlaygroundError as e:
            return {status: error_notice(str(e))}
        return {jobs: job_rows(list_jobs(services.store)), **show(selected)}

    def on_tick(selected):
        if not active_jobs(services.store):
            return {c: gr.skip() for c in [jobs, *detail]}
        finetune.refresh_active(services, min_interval=POLL_S - 0.5)
        return {jobs: job_rows(list_jobs(services.store)), **show(selected)}

    def on_select(evt: gr.SelectData):
        selected = evt.row_value[0] if evt.row_value else ""
        return {job_id: selected, **show(selected)}

    # Said up front, once per endpoint: whether Start can work here, and what to do instead when it cannot.
    base.change(on_base, [base, dataset], [availability, start], api_name="finetune_availability",
                show_progress="hidden")
    if Context.root_block is not None:  # built inside the app's Blocks: ask when the page opens
        Context.root_block.load(on_base, [base, dataset], [availability, start], api_visibility="private",
                                show_progress="hidden")
    estimate.click(on_estimate, form, [report], api_name="finetune_estimate")
    start.click(on_start, form, [report, jobs, job_id, *detail], api_name="finetune_start")
    refresh.click(on_refresh, [job_id], [jobs, *detail], api_name="finetune_refresh")
    job_id.submit(on_refresh, [job_id], [jobs, *detail], api_visibility="private")
    cancel.click(on_cancel, [job_id], [jobs, *detail], api_name="finetune_cancel")
    jobs.select(on_select, None, [job_id, *detail], api_visibility="private")
    timer.tick(on_tick, [job_id], [jobs, *detail], api_visibility="private", show_progress="hidden")
    # Datasets and models added since the page opened show up when a list is opened.
    dataset.focus(lambda current: gr.update(choices=dataset_choices(services), value=current), [dataset], [dataset],
                  api_visibility="private")
    base.focus(lambda current: gr.update(choices=base_model_choices(services), value=current), [base], [base],
               api_visibility="private")
