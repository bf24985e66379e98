"""Optional PNGs beside a report's JSON: throughput over time and the latency CDF.

matplotlib is an optional extra (``pip install -e '.[bench]'``); without it the
scenario still runs and says why there are no plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def matplotlib_pyplot() -> Any | None:
    """pyplot with a file-only backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


Series = Sequence[tuple[float, float]]


def plot_throughput(
    path: Path, panels: Sequence[tuple[str, dict[str, Series]]], ylabel: str
) -> bool:
    """One panel per (title, named series of (seconds since start, value)), stacked;
    False without matplotlib."""
    plt = matplotlib_pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    for ax, (title, series) in zip(axes[:, 0], panels, strict=True):
        for label, points in series.items():
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], label=label)
        ax.set_xlabel("seconds since the producers started")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if any(points for points in series.values()):
            ax.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_cdf(path: Path, samples: dict[str, Sequence[float]], title: str, xlabel: str) -> bool:
    """Empirical CDF per named sample set; False without matplotlib."""
    plt = matplotlib_pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, values in samples.items():
        ordered = sorted(values)
        if ordered:
            n = len(ordered)
            ax.step(ordered, [(i + 1) / n for i in range(n)], where="post", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of changes")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
