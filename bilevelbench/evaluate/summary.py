"""The evaluator's human-readable summary of a results record (printed by ``evaluate`` and ``score``).

The common lines (gap, feasibility, latency, the evaluator's own cost) are written here; each family adds the
lines of its own violation measures (``Family.summary_lines``). A record of a family whose plugin is not installed
still gets the common lines.
"""

from __future__ import annotations


def fmt(value, spec: str = ".2e") -> str:
    """A number for the summary (``—`` for a missing one)."""
    return "—" if value is None else format(value, spec)


def summary(record: dict) -> str:
    """The summary lines of ``record``."""
    m, d, s = record["metrics"], record["dataset"], record["solver"]
    lines = [f"{record['mode']} {s['name']} {s['version']} on {d['name']} ({d['split']}, {d['n_instances']} "
             f"instances): {record['status']}" + (f" ({record['status_reason']})" if record["status_reason"] else "")]
    from bilevelbench.core.registry import find_family

    family = find_family(str(d.get("family", "")))
    if record["mode"] == "closed_loop" and m:
        if family is not None:
            lines += family.closed_loop_summary_lines(m)
        lines.append(f"  latency    per step median {fmt(m.get('latency_ms_median'), '.3f')} ms  p95 "
                     f"{fmt(m.get('latency_ms_p95'), '.3f')} ms")
        return "\n".join(lines)
    if m:
        paper = (f"   paper convention (+offset): mean {fmt(m.get('paper_gap_mean'))}"
                 if m.get("paper_gap_mean") is not None else "")
        lines += [
            (f"  gap        mean {fmt(m.get('gap_mean'))}  median {fmt(m.get('gap_median'))}  p95 "
             f"{fmt(m.get('gap_p95'))}  max {fmt(m.get('gap_max'))}{paper}"),
            (f"  feasible   {m.get('n_feasible')}/{m.get('n_instances')} ({100 * (m.get('feasible_rate') or 0):.1f}%) "
             f"at tolerance {m.get('feasibility_tolerance', 0):g}; scored {m.get('n_scored')}, failed "
             f"{m.get('n_failed')}"),
        ]
        if family is not None:
            lines += family.summary_lines(m)
        if "z_distance_mean" in m:
            lines.append(f"  your z     distance to z(y) mean {fmt(m['z_distance_mean'])}, follower regret mean "
                         f"{fmt(m['follower_regret_mean'])} (z is never scored)")
        verified = "" if s.get("latency_verified") else " (self-reported, unverified)"
        lines.append(f"  latency    median {fmt(m.get('latency_ms_median'), '.3f')} ms{verified}  "
                     f"p95 {fmt(m.get('latency_ms_p95'), '.3f')} ms  throughput "
                     f"{fmt(m.get('throughput_per_s'), '.1f')}/s  speedup vs exact "
                     f"{fmt(m.get('speedup_vs_exact'), '.2f')}x")
    timing = record.get("timing") or {}
    if timing.get("scoring_ms_per_instance") is not None:
        overhead = timing.get("evaluator_overhead_ms_per_instance")
        lines.append(f"  evaluator  scoring {timing['scoring_ms_per_instance']:.3f} ms/instance"
                     + (f", overhead in the solver loop {overhead:.3f} ms/instance" if overhead is not None else ""))
    return "\n".join(lines)
