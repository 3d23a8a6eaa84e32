"""The figure of `lstm-consumer evaluate --plot`: rolling hit rates of the published predictions,
the LSTM alone and the baseline.

Imported only when a plot is asked for: matplotlib is slow to import. It draws on an Agg canvas
of its own (no pyplot, no global state), so it works without a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_hit_rates"]


def plot_hit_rates(
    rates: Mapping[str, Sequence[float]], reached: int | None, results: Mapping[str, Any], path: str | Path
) -> None:
    """Write a PNG: each predictor's hit rate of the last 100 scored predictions after every
    message (`rates`), the message at which 99 of 100 were first reached, and `evaluate`'s
    results (the overall rates, the settings) in the legend and title."""
    x = range(1, len(rates["published"]) + 1)
    figure = Figure(figsize=(9, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, label, width in (
        ("published", "published", 1.4),
        ("lstm", "LSTM alone", 1),
        ("baseline", "baseline", 1),
    ):
        overall = results["hit_rate" if name == "published" else f"{name}_hit_rate"]
        axes.plot(x, rates[name], label=f"{label} (overall {overall:.3f})", linewidth=width)
    if reached is not None:
        axes.axvline(reached, color="grey", linestyle=":", label=f"99/100 at {reached}")
    config = results["config"]
    axes.set(
        xlabel="message",
        ylabel="hit rate, last 100 scored predictions",
        ylim=(0, 1.02),
        xlim=(1, max(len(x), 2)),
        title=(
            f"window {config['window']}, units {config['units']}, mode {results['mode']}: "
            f"{results['messages']} messages"
        ),
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.savefig(path, format="png", dpi=100)
