"""`rlvr eval --compare A B`: two result folders side by side, metric by metric and group by group."""
from __future__ import annotations

import json
from pathlib import Path

from rlvr.errors import UserError
from rlvr.eval.report import fmt, metric_keys, table


def load_results(folder: str | Path) -> dict:
    """A folder's results.json; for a whole run's folder, its last checkpoint's results."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise UserError(f"--compare: {path} not found (expected the out folder of an `rlvr eval`)")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"--compare: {path}: not valid JSON ({e.msg})") from None
    if "checkpoints" in results:  # a run's combined results: compare its last checkpoint
        last = results["checkpoints"][-1]
        inner = Path(folder) / last["checkpoint"] / "results.json"
        if inner.is_file():
            return json.loads(inner.read_text())
        return {**results, "metrics": last["metrics"], "model": f"{results['run']}/{last['checkpoint']}"}
    if "metrics" not in results:
        raise UserError(f"--compare: {path}: no 'metrics' (not an rlvr eval result)")
    return results


def delta(key: str, a, b) -> str:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return "-"
    if key == "mean_tokens":
        return f"{b - a:+.1f}"
    return f"{100 * (b - a):+.1f} pts"


def compare(a_dir: str | Path, b_dir: str | Path) -> str:
    """A markdown report: the headline metrics of A and B and B - A, then the same per group."""
    a, b = load_results(a_dir), load_results(b_dir)
    warn = ""
    if (a.get("benchmark"), a.get("problems")) != (b.get("benchmark"), b.get("problems")):
        warn = (f"\nNote: A is {a.get('benchmark')} ({a.get('problems')} problems), B is {b.get('benchmark')} "
                f"({b.get('problems')} problems); the scores are not over the same problems.\n")
    keys = metric_keys([a["metrics"], b["metrics"]])
    rows = [[k, fmt(k, a["metrics"].get(k)), fmt(k, b["metrics"].get(k)),
             delta(k, a["metrics"].get(k), b["metrics"].get(k))] for k in keys]
    text = (f"# Compare\n\n- A: `{a_dir}` ({a.get('model')}, {a.get('benchmark')})\n"
            f"- B: `{b_dir}` ({b.get('model')}, {b.get('benchmark')})\n{warn}\n"
            + table(["metric", "A", "B", "B - A"], rows))
    for group in sorted({k for k in (*a, *b) if k.startswith("by_")}):
        ga, gb = a.get(group, {}), b.get(group, {})
        main = keys[0]
        grows = [[name, fmt(main, ga.get(name, {}).get(main)), fmt(main, gb.get(name, {}).get(main)),
                  delta(main, ga.get(name, {}).get(main), gb.get(name, {}).get(main))]
                 for name in sorted(set(ga) | set(gb), key=lambda s: (len(s), s))]
        text += f"\n## {main} by {group[3:]}\n\n" + table([group[3:], "A", "B", "B - A"], grows)
    return text
