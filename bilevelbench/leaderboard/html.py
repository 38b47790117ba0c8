"""``index.html``: a static, self-contained page with sortable tables and the plots.

The page loads nothing from elsewhere: CSS and JavaScript are inline, and the only other
resources are the SVG plots beside it. A Content-Security-Policy allows exactly the inline
style and script below (by hash) and images from the page's own origin (and ``data:`` URLs, for
the empty favicon), so even a string that escaped escaping could not run. The script only reads the DOM (``data-value`` attributes
of the cells); no record data is placed inside ``<script>``.

Every piece of text goes through :func:`escape_html` (``html.escape(..., quote=True)``).
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence

from bilevelbench import __version__
from bilevelbench.leaderboard.plots import DISTRIBUTION_CAPTION, PARETO_CAPTION
from bilevelbench.leaderboard.ranking import RANKING_RULE, DatasetGroup
from bilevelbench.leaderboard.table import (
    clean_text,
    columns_for,
    dataset_facts,
    entry_cells,
    entry_notes,
    solver_label,
)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #fff; line-height: 1.45; }
main { max-width: 1400px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.25rem; margin-top: 2.5rem; border-bottom: 1px solid #ddd; padding-bottom: .25rem; }
.facts { display: flex; flex-wrap: wrap; gap: .25rem 1.5rem; margin: .5rem 0 1rem; padding: 0; }
.facts div { display: flex; gap: .35rem; }
.facts dt { color: #666; }
.facts dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85rem; white-space: nowrap; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #e5e5e5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f5f5f7; text-align: left; position: sticky; top: 0; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button:focus-visible { outline: 2px solid #0071e3; }
tr.front td:first-child { box-shadow: inset 3px 0 0 #d62728; }
tbody tr:hover { background: #fafafa; }
.notes { font-size: .8rem; color: #444; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .8rem; color: #555; max-width: 60rem; }
"""

SCRIPT = """
(function () {
  "use strict";
  function value(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell ? cell.getAttribute("data-value") : null;
    if (raw === null || raw === "") { return null; }
    if (!numeric) { return raw; }
    var x = parseFloat(raw);
    return isNaN(x) ? null : x;
  }
  function order(row) { return Number(row.getAttribute("data-order")); }
  function sortRows(table, index, numeric, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, index, numeric);
      var y = value(b, index, numeric);
      if (x === null || y === null) {
        if (x === null && y === null) { return order(a) - order(b); }
        return x === null ? 1 : -1;
      }
      var c = x < y ? -1 : (x > y ? 1 : 0);
      if (descending) { c = -c; }
      return c !== 0 ? c : order(a) - order(b);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      th.addEventListener("click", function () {
        var descending = th.getAttribute("aria-sort") === "ascending";
        Array.prototype.forEach.call(headers, function (h) {
          h.removeAttribute("aria-sort");
          h.querySelector(".arrow").textContent = "";
        });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        th.querySelector(".arrow").textContent = descending ? " \\u25bc" : " \\u25b2";
        sortRows(table, index, th.getAttribute("data-type") === "number", descending);
      });
    });
  });
})();
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


#: The page's Content-Security-Policy: nothing but its own inline style and script, same-origin and data: images.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; img-src 'self' data:; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
    "base-uri 'none'; form-action 'none'"
)


def escape_html(text: str) -> str:
    """Escape ``text`` for HTML element content and quoted attribute values.

    Control characters and line breaks become single spaces, then ``html.escape(text, quote=True)``.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
    """
    return html.escape(clean_text(text), quote=True)


def _data_value(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def render_html(groups: Sequence[DatasetGroup], plots: Sequence[tuple[str, str]], anchors: Sequence[str],
                n_records: int, intro: Sequence[str] = ()) -> str:
    """The whole ``index.html``.

    Parameters
    ----------
    groups : sequence of DatasetGroup
        Ranked datasets, in display order.
    plots : sequence of (str, str)
        For each group, the relative POSIX paths of its Pareto plot and its distribution plot.
    anchors : sequence of str
        For each group, a unique element id made of ``[a-z0-9-]`` only.
    n_records : int
        How many records the leaderboard was built from.
    intro : sequence of str
        Paragraphs shown under the title (escaped like everything else).

    Returns
    -------
    str
    """
    e = escape_html
    built = f"Built by bilevelbench {__version__} from {n_records} results record(s) in {len(groups)} dataset split(s)."
    how = ("Rows with a red bar are on the Pareto front of median latency and mean gap. Click a column header to "
           "sort the table by it; click again to reverse.")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(CONTENT_SECURITY_POLICY)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        '<link rel="icon" href="data:,">',
        "<title>bilevelbench leaderboard</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<main>",
        "<h1>bilevelbench leaderboard</h1>",
        *(f"<p>{e(text)}</p>" for text in intro),
        f"<p>{e(built)}</p>",
        f"<p>{e(RANKING_RULE)} {e(how)}</p>",
    ]
    if len(groups) > 1:
        out.append("<nav><ul>")
        out += [f'<li><a href="#{anchor}">{e(clean_text(g.dataset.name, 80))} ({e(g.dataset.split)})</a></li>'
                for g, anchor in zip(groups, anchors)]
        out.append("</ul></nav>")
    for group, (pareto, distribution), anchor in zip(groups, plots, anchors):
        out += _section(group, pareto, distribution, anchor)
    out += ["</main>", f"<script>{SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def _section(group: DatasetGroup, pareto: str, distribution: str, anchor: str) -> list[str]:
    e = escape_html
    d = group.dataset
    name = clean_text(d.name, 80)
    out = [f'<section id="{anchor}">', f"<h2>{e(name)} ({e(d.split)})</h2>", '<dl class="facts">']
    out += [f"<div><dt>{e(label)}</dt><dd>{e(text)}</dd></div>" for label, text in dataset_facts(group)]
    out += ["</dl>", '<div class="scroll">', '<table class="sortable">', "<thead>", "<tr>"]
    columns = columns_for(d.family)
    for i, column in enumerate(columns):
        kind = "number" if column.numeric else "text"
        sort = ' aria-sort="ascending"' if i == 0 else ""
        arrow = " \u25b2" if i == 0 else ""
        out.append(f'<th scope="col" data-type="{kind}"{sort}><button type="button">{e(column.header)}'
                   f'<span class="arrow">{arrow}</span></button></th>')
    out += ["</tr>", "</thead>", "<tbody>"]
    for order, entry in enumerate(group.entries):
        cls = ' class="front"' if entry.on_front else ""
        cells = []
        for column, cell in zip(columns, entry_cells(entry, columns)):
            num = ' class="num"' if column.numeric else ""
            title = ""
            if column.key == "solver" and entry.record.solver.description.strip():
                title = f' title="{e(clean_text(entry.record.solver.description, 300))}"'
            cells.append(f'<td{num}{title} data-value="{e(_data_value(cell.value))}">{e(cell.text)}</td>')
        out.append(f'<tr{cls} data-order="{order}">' + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>", "</div>"]
    notes = [(entry, entry_notes(entry)) for entry in group.entries]
    if any(n for _, n in notes):
        out.append('<ul class="notes">')
        for entry, items in notes:
            if items:
                head = e(f"#{entry.rank} {solver_label(entry.record)}")
                out.append(f"<li><strong>{head}</strong>: " + "; ".join(e(n) for n in items) + "</li>")
        out.append("</ul>")
    out += [
        "<figure>",
        f'<img src="{e(pareto)}" alt="{e(f"Gap against latency, {name}")}">',
        f"<figcaption>{e(PARETO_CAPTION)}</figcaption>",
        "</figure>",
        "<figure>",
        f'<img src="{e(distribution)}" alt="{e(f"Per-instance distributions, {name}")}">',
        f"<figcaption>{e(DISTRIBUTION_CAPTION)}</figcaption>",
        "</figure>",
        "</section>",
    ]
    return out
