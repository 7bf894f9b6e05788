"""The A/B leaderboard: Bradley-Terry scores with bootstrap 95% intervals, a win-rate matrix and vote counts."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import gradio as gr
import pandas as pd

from ..ab import rating
from ..ab.votes import VoteFilter, for_rating, load_votes
from ..chat.services import Services
from ..core.errors import PlaygroundError
from ..core.plural import plural
from .format import error_notice

ALL_PERSONAS = "All personas"
TABLE_COLUMNS = ["rank", "model", "score", "95% CI", "votes", "wins", "ties", "losses"]
EMPTY_TABLE = [[""] * len(TABLE_COLUMNS)]
FEW_BATTLES = 10
NO_VOTES = ("No votes yet. Vote on a round in **Compare**: the scores appear here with their 95% intervals.")


@dataclass
class Leaderboard:
    inputs: list
    outputs: list
    refresh: Callable


def parse_day(text: str | None, what: str) -> date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PlaygroundError(f"{what}: '{text}' is not a date; write it as YYYY-MM-DD, e.g. 2025-03-31.") from None


def vote_filter(blind_only: bool, persona: str | None, since: str, until: str) -> VoteFilter:
    return VoteFilter(blind_only=bool(blind_only), persona=None if persona in (None, "", ALL_PERSONAS) else persona,
                      since=parse_day(since, "From"), until=parse_day(until, "To"))


def table_rows(board: list[rating.Standing]) -> list[list]:
    return [list(s.as_row().values()) for s in board] or EMPTY_TABLE


def matrix_rows(rates: dict[str, dict[str, float | None]], order: list[str]) -> tuple[list[str], list[list]]:
    """Headers and rows of the win-rate matrix: the row model's share of wins against the column model."""
    headers = ["model", *order]
    rows = [[a, *("" if a == b else "—" if rates[a].get(b) is None else f"{rates[a][b]:.0%}" for b in order)]
            for a in order]
    return headers, rows or [[""]]


def plot_frame(board: list[rating.Standing]) -> pd.DataFrame:
    """A forest plot's points: each model's score and the ends of its interval on one row per model.

    The rows are named "1. model", "2. model", ... because the plot orders names alphabetically: best on top."""
    width = len(str(len(board)))
    rows = [{"model": f"{i + 1:0{width}d}. {s.model}", "rating": round(value, 1), "point": point}
            for i, s in enumerate(board)
            for point, value in (("95% low", s.lower), ("score", s.score), ("95% high", s.upper))]
    # Typed even when empty: the plot takes a column of no known type for categories, not numbers.
    return pd.DataFrame(rows, columns=["model", "rating", "point"]).astype({"model": str, "rating": float,
                                                                           "point": str})


def summary(rated: int, left_out: int, models: int, blind_only: bool) -> str:
    if not rated and not left_out:
        return NO_VOTES
    text = f"**{rated}** battle{'s' if rated != 1 else ''} between **{models}** setup{'s' if models != 1 else ''}"
    if blind_only and left_out:
        text += (f" · {plural(left_out, 'sighted battle')} left out (names were shown before the "
                 "vote): untick *Blind votes only* to count them")
    text += ". Ranks are shared when 95% intervals overlap; ties and “both bad” count half a win each way."
    if rated < FEW_BATTLES:
        text += " With this few votes the intervals say little yet: they come from resampling the same few votes."
    return text


def build_leaderboard(services: Services) -> Leaderboard:
    with gr.Row():
        blind_only = gr.Checkbox(True, label="Blind votes only", info="Votes cast before the names were shown.")
        persona = gr.Dropdown([ALL_PERSONAS, *sorted(services.personas)], value=ALL_PERSONAS, label="Persona")
        since = gr.Textbox(label="From", placeholder="YYYY-MM-DD", max_lines=1)
        until = gr.Textbox(label="To", placeholder="YYYY-MM-DD", max_lines=1)
        refresh_button = gr.Button("Refresh", scale=0, min_width=100)
    notice = gr.Markdown(NO_VOTES, label="Summary", elem_id="ab-board-summary")
    table = gr.Dataframe(EMPTY_TABLE, headers=TABLE_COLUMNS, label="Leaderboard", interactive=False, type="array",
                         elem_id="ab-leaderboard-table")
    # A fixed height: left to size itself inside the tab, the plot grew without end (33 million pixels).
    # No value rather than an empty frame: a plot first drawn empty stayed an empty strip once data came.
    # Scores as plain integers ("1550", not "1,550"): with thousands commas neighbouring ticks ran together.
    plot = gr.ScatterPlot(None, x="rating", y="model", color="point", color_title="", height=300, x_axis_format="d",
                          label="Scores (blue) with the ends of their 95% intervals (grey)",
                          color_map={"score": "#2563eb", "95% low": "#9ca3af", "95% high": "#9ca3af"})
    matrix = gr.Dataframe([[""]], headers=["model"], label="Win rate of the row against the column",
                          interactive=False, type="array")

    def refresh(blind, persona_name, from_day, to_day):
        try:
            where = vote_filter(blind, persona_name, from_day, to_day)
        except PlaygroundError as e:
            return {notice: error_notice(str(e))}
        votes = load_votes(services.store, VoteFilter(False, where.persona, where.since, where.until))
        rated = for_rating(votes, where.blind_only)
        board = rating.leaderboard(rated)
        order = [s.model for s in board]
        headers, rows = matrix_rows(rating.win_rates(rated), order)
        counted = sum(v.anonymous for v in rated)
        return {notice: summary(counted, len(votes) - counted, len(board), where.blind_only),
                table: table_rows(board),
                plot: plot_frame(board) if board else None,
                matrix: pd.DataFrame(rows, columns=headers)}

    inputs = [blind_only, persona, since, until]
    outputs = [notice, table, plot, matrix]
    refresh_button.click(refresh, inputs, outputs, api_name="ab_leaderboard")
    for control in (blind_only, persona):
        control.change(refresh, inputs, outputs, api_visibility="private")
    return Leaderboard(inputs, outputs, refresh)
