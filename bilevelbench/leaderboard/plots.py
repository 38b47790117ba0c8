"""SVG plots of one dataset: gap against latency with the Pareto front, and per-instance distributions.

matplotlib is imported inside the functions, never when the package is imported. Figures are
built with the object-oriented API (``matplotlib.figure.Figure``), not ``pyplot``, so no GUI
backend is needed and no global figure state or backend of a host process (a notebook) is touched.
Output is deterministic: fixed style (library defaults, not the user's matplotlibrc), fixed
SVG id salt, no date in the metadata, text drawn as paths.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

from bilevelbench.leaderboard.ranking import DatasetGroup, RankedEntry
from bilevelbench.leaderboard.table import clean_text, solver_label

logger = logging.getLogger(__name__)

#: Gaps and violations below this (including exact zeros) are drawn at this value on log axes.
GAP_FLOOR = 1e-12
#: Latencies below this many milliseconds (a self-reported 0) are drawn at this value on log axes.
LATENCY_FLOOR_MS = 1e-6
#: Longest solver label drawn in a plot.
MAX_PLOT_LABEL = 40

_RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "bilevelbench-leaderboard",
    "text.usetex": False,
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
}


@contextlib.contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(), warnings.catch_warnings():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(_RC)
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from")
        yield


def plot_text(text: str, limit: int | None = MAX_PLOT_LABEL) -> str:
    """Text safe to hand to matplotlib: one line, cut to ``limit``, ``$`` escaped so it is never mathtext."""
    return clean_text(text, limit).replace("$", r"\$")


def _label(entry: RankedEntry) -> str:
    return plot_text(f"#{entry.rank} {solver_label(entry.record, None)}")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    logger.debug("wrote %s", path)
    return path


def pareto_plot(group: DatasetGroup, path: Path) -> Path:
    """Mean gap against median latency (log-log) for one dataset, with its Pareto front.

    Records without a median latency or a mean gap are not drawn. Gaps below :data:`GAP_FLOOR`
    are drawn at the floor. Filled markers: latency measured by bilevelbench; hollow markers:
    self-reported (unverified) latency. Front points are drawn larger, in red, joined by a step line.

    Parameters
    ----------
    group : DatasetGroup
        The ranked records of one dataset.
    path : Path
        Where to write the SVG file.

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.figure import Figure

    with _style():
        fig = Figure(figsize=(7.0, 4.5))
        ax = fig.add_subplot()
        drawn = [e for e in group.entries
                 if e.record.metrics["latency_ms_median"] is not None and e.record.metrics["gap_mean"] is not None]
        ax.set_xscale("log")
        ax.set_yscale("log")
        if not drawn:
            ax.text(0.5, 0.5, "no record has both a median latency and a mean gap", ha="center", va="center",
                    transform=ax.transAxes)
        for entry in drawn:
            x, y = _point(entry)
            hollow = not entry.record.latency_verified
            colour = "tab:red" if entry.on_front else "tab:blue"
            ax.scatter([x], [y], s=60 if entry.on_front else 30, marker="o", linewidths=1.2, zorder=3,
                       facecolors="none" if hollow else colour, edgecolors=colour)
            ax.annotate(_label(entry), (x, y), xytext=(5, 4), textcoords="offset points", fontsize=7)
        front = sorted(_point(e) for e in drawn if e.on_front)
        if front:
            xs, ys = zip(*front)
            ax.step(xs, ys, where="post", color="tab:red", linewidth=1.0, alpha=0.7, zorder=2,
                    label="Pareto front")
            ax.legend(loc="best", fontsize=7)
        ax.set_xlabel("median latency per instance (ms)")
        ax.set_ylabel(f"mean relative gap (values < {GAP_FLOOR:.0e} drawn at {GAP_FLOOR:.0e})")
        ax.set_title(plot_text(f"{group.dataset.name} ({group.dataset.split}): gap vs latency", 90))
        ax.grid(True, which="major", alpha=0.3)
        ax.margins(0.15)
        fig.tight_layout()
        return _save(fig, path)


def _point(entry: RankedEntry) -> tuple[float, float]:
    m = entry.record.metrics
    return max(m["latency_ms_median"], LATENCY_FLOOR_MS), max(m["gap_mean"], GAP_FLOOR)


def distribution_plot(group: DatasetGroup, path: Path) -> Path:
    """Box plots of per-instance ``gap`` and ``coupling_violation_l2``, one box per record.

    Null values are dropped; values below :data:`GAP_FLOOR` are drawn at the floor (log axes).
    Records with no per-instance values are listed without a box.

    Parameters
    ----------
    group : DatasetGroup
        The ranked records of one dataset.
    path : Path
        Where to write the SVG file.

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.figure import Figure

    panels = (("gap", "per-instance relative gap"), ("coupling_violation_l2", "per-instance coupling violation (L2)"))
    entries = list(group.entries)
    with _style():
        height = max(2.5, 0.3 * len(entries) + 1.4)
        fig = Figure(figsize=(8.0, height))
        axes = fig.subplots(1, 2, sharey=True)
        positions = list(range(len(entries), 0, -1))  # best rank at the top
        for ax, (key, title) in zip(axes, panels):
            ax.set_xscale("log")
            data, where = [], []
            for entry, pos in zip(entries, positions):
                values = [max(v, GAP_FLOOR) for v in entry.record.per_instance.get(key, ()) if v is not None]
                if values:
                    data.append(values)
                    where.append(pos)
            if data:
                ax.boxplot(data, positions=where, orientation="horizontal", widths=0.6, showfliers=True,
                           flierprops={"markersize": 2, "alpha": 0.5})
            else:
                ax.text(0.5, 0.5, "no per-instance values", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(title)
            ax.set_xlabel(f"values < {GAP_FLOOR:.0e} drawn at {GAP_FLOOR:.0e}")
            ax.grid(True, axis="x", which="major", alpha=0.3)
        axes[0].set_yticks(positions, [_label(e) for e in entries])
        axes[0].set_ylim(0.4, len(entries) + 0.6)
        fig.suptitle(plot_text(f"{group.dataset.name} ({group.dataset.split}): per-instance distributions", 90),
                     fontsize=9)
        fig.tight_layout()
        return _save(fig, path)


#: Caption under the gap/latency plot (plain text).
PARETO_CAPTION = (
    f"Mean relative gap against median latency, log-log. Gaps below {GAP_FLOOR:.0e} (including exact zeros) "
    f"are drawn at {GAP_FLOOR:.0e}. The step line joins the Pareto front (no other complete run is at least as "
    "fast and at least as accurate), whose points are red. Hollow markers: self-reported, unverified latency "
    "(score mode). Records without a median latency or a mean gap are not drawn."
)
#: Caption under the distribution plot (plain text).
DISTRIBUTION_CAPTION = (
    "Per-instance relative gap and coupling violation (L2), one box per record in rank order; null values are "
    f"dropped and values below {GAP_FLOOR:.0e} (including exact zeros) are drawn at {GAP_FLOOR:.0e}."
)
