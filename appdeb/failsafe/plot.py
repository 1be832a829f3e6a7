"""The benchmark's picture: per scenario, good requests answered and their latency over time, one line per server.

matplotlib is an optional extra (`appdeb[bench]`): appdeb itself must not need it, so it is imported
only here, by name at run time (which also keeps mypy's strict check independent of whether it is
installed). Without it the benchmark still writes its JSON and Markdown and says how to get the plot.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appdeb.failsafe.report import RunResult, timeline

INSTALL_HINT = "pip install 'appdeb[bench]' (in a checkout: .venv/bin/pip install -e '.[bench]')"


def available() -> bool:
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        return False
    return True


def plot(results: Sequence[RunResult], path: Path, servers: Sequence[str], scenarios: Sequence[str]) -> None:
    """Write a PNG: a row per scenario; good requests answered, their median latency, the server's RSS."""
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    rows = [s for s in scenarios if any(r.scenario == s for r in results)]
    names = [s for s in servers if any(r.server == s for r in results)]
    fig, axes = plt.subplots(len(rows), 3, figsize=(16, 2.3 * len(rows) + 0.9), squeeze=False, sharex=True)
    colors = plt.get_cmap("tab10")
    for row, scenario in enumerate(rows):
        for i, name in enumerate(names):
            run = next((r for r in results if r.server == name and r.scenario == scenario), None)
            if run is not None:
                _draw(axes[row], run, colors(i), name)
        _style(axes[row], scenario)
    for col, title in enumerate(("good requests (/ok) answered 200, % per second",
                                 "their median latency, ms (log)", "server RSS, MiB (all its processes)")):
        axes[0][col].set_title(title, fontsize=10)
        axes[-1][col].set_xlabel("seconds into the run", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(names), 8), fontsize=9, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _draw(axes: Any, run: RunResult, color: Any, name: str) -> None:
    points = timeline(run.records)
    xs = [p[0] for p in points]
    axes[0].plot(xs, [p[1] * 100 for p in points], color=color, label=name, linewidth=1.2)
    axes[1].plot(xs, [p[2] if p[2] is not None else float("nan") for p in points], color=color, linewidth=1.2)
    axes[2].plot([m.t for m in run.memory.samples], [m.rss_mib for m in run.memory.samples], color=color,
                 linewidth=1.2)


def _style(axes: Any, scenario: str) -> None:
    axes[0].set_ylim(-5, 105)
    axes[0].set_ylabel(scenario, fontsize=10, fontweight="bold")
    axes[1].set_yscale("log")
    axes[1].set_ylim(0.5, 30000)
    axes[1].set_yticks([1, 10, 100, 1000, 10000], ["1", "10", "100", "1000", "10000"])
    axes[2].set_ylim(bottom=0)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
