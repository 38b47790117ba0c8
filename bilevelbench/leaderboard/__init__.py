"""The leaderboard: results records (``docs/results.md``) rendered as Markdown, HTML and SVG plots.

Example
-------
>>> from pathlib import Path
>>> from bilevelbench.leaderboard import build_leaderboard
>>> build_leaderboard(Path("results"), Path("site"))    # doctest: +SKIP
[PosixPath('site/LEADERBOARD.md'), PosixPath('site/index.html'), PosixPath('site/plots/...svg'), ...]

The modules each do one thing: :mod:`.records` finds and validates records, :mod:`.ranking`
groups, ranks and finds the Pareto front, :mod:`.table` turns a ranked record into table cells,
:mod:`.markdown`, :mod:`.html` and :mod:`.plots` render. The ranking rule, the Pareto front and
the escaping guarantee are described in ``docs/leaderboard.md``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bilevelbench.errors import MissingDataError, UsageError
from bilevelbench.leaderboard.ranking import DatasetGroup, group_records, pareto_front, rank_records
from bilevelbench.leaderboard.records import Record, load_records

logger = logging.getLogger(__name__)

MARKDOWN_NAME = "LEADERBOARD.md"
HTML_NAME = "index.html"
PLOTS_DIR = "plots"

__all__ = [
    "DatasetGroup",
    "Record",
    "build_leaderboard",
    "dataset_slugs",
    "group_records",
    "load_records",
    "pareto_front",
    "rank_records",
]


def build_leaderboard(source_dir: Path, out_dir: Path, intro: tuple[str, ...] = ()) -> list[Path]:
    """Render every results record below ``source_dir`` into ``out_dir``.

    Writes ``out_dir/LEADERBOARD.md``, ``out_dir/index.html`` and, per dataset split,
    ``out_dir/plots/<slug>-pareto.svg`` and ``out_dir/plots/<slug>-distribution.svg``.
    Existing files of those names are replaced; nothing else in ``out_dir`` is touched.
    The same records always give byte-identical files.

    Parameters
    ----------
    source_dir : Path
        Directory searched recursively for ``*.json`` results records (hidden directories
        are skipped; JSON files that are not results records are ignored).
    out_dir : Path
        Output directory; created, with its parents, if missing.
    intro : tuple of str
        Paragraphs shown under the HTML page's title (the scoring service says what its views mean).

    Returns
    -------
    list of Path
        The files written: the Markdown file, the HTML file, then the plots in sorted order.

    Raises
    ------
    MissingDataError
        If ``source_dir`` does not exist or holds no results record.
    SchemaError
        If a ``*.json`` file is malformed, or a results record is newer than this reader or
        lacks a field the leaderboard needs. The message names the file.
    UsageError
        If ``source_dir`` is not a directory, or ``out_dir`` exists and is not a directory.
    """
    from bilevelbench.leaderboard.html import render_html
    from bilevelbench.leaderboard.markdown import render_markdown
    from bilevelbench.leaderboard.plots import distribution_plot, pareto_plot

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    records = load_records(source_dir)
    if not records:
        raise MissingDataError(f"no results records below {str(source_dir)!r}: expected *.json files with "
                               '"schema": "bilevelbench-result" (written by bilevelbench evaluate or score); '
                               "received none")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output path {str(out_dir)!r} is not a directory; expected a directory for the leaderboard")
    groups = group_records(records)
    slugs = dataset_slugs(groups)
    out_dir.mkdir(parents=True, exist_ok=True)

    plot_files: list[Path] = []
    links: list[tuple[str, str]] = []
    for group, slug in zip(groups, slugs):
        pareto = f"{PLOTS_DIR}/{slug}-pareto.svg"
        distribution = f"{PLOTS_DIR}/{slug}-distribution.svg"
        plot_files.append(pareto_plot(group, out_dir / pareto))
        plot_files.append(distribution_plot(group, out_dir / distribution))
        links.append((pareto, distribution))

    markdown_path = out_dir / MARKDOWN_NAME
    markdown_path.write_text(render_markdown(groups, links, len(records)), encoding="utf-8", newline="\n")
    html_path = out_dir / HTML_NAME
    html_path.write_text(render_html(groups, links, slugs, len(records), intro), encoding="utf-8", newline="\n")
    logger.info("leaderboard of %d record(s) in %d dataset split(s) written to %s", len(records), len(groups),
                out_dir)
    return [markdown_path, html_path, *sorted(plot_files)]


def dataset_slugs(groups: list[DatasetGroup]) -> list[str]:
    """A unique file-name-safe slug (``[a-z0-9-]`` only) per dataset split.

    The slug is built from the dataset name, its split and the first 8 hex digits of its sha256,
    so it does not change when other datasets are added.

    Parameters
    ----------
    groups : list of DatasetGroup

    Returns
    -------
    list of str
        One slug per group, in the same order.
    """
    slugs: list[str] = []
    seen: set[str] = set()
    for group in groups:
        d = group.dataset
        name = re.sub(r"[^a-z0-9]+", "-", d.name.lower()).strip("-")[:48].strip("-") or "dataset"
        split = re.sub(r"[^a-z0-9]+", "-", d.split.lower()).strip("-")[:16].strip("-") or "split"
        digest = re.sub(r"[^0-9a-f]", "", d.sha256.lower())[:8] or "nohash"
        base = slug = f"{name}-{split}-{digest}"
        n = 2
        while slug in seen:
            slug = f"{base}-{n}"
            n += 1
        seen.add(slug)
        slugs.append(slug)
    return slugs
