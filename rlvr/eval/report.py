"""From judged generations to results: per-problem scores, means overall and per group, a markdown table."""
from __future__ import annotations

from collections.abc import Sequence

from rlvr.eval.metrics import group_means, mean, problem_scores


def problem_record(row: dict, records: Sequence[dict], ks: Sequence[int], groups: Sequence[str]) -> dict:
    """One problem's scores from its judged responses (greedy: `accuracy`; samples: pass@k, maj@k)."""
    out = {g: row[g] for g in groups if row.get(g) is not None}
    greedy = [r for r in records if r["mode"] == "greedy"]
    samples = sorted((r for r in records if r["mode"] == "sample"), key=lambda r: r["sample"])
    if greedy:
        out["accuracy"] = float(bool(greedy[0]["correct"]))
    # the training reward (the code verifier's: the share of tests passed), greedy when there is greedy
    out["mean_reward"] = mean(float(r["reward"]) for r in (greedy or samples))
    if samples:
        answers = [r.get("answer") for r in samples]
        out.update(problem_scores([bool(r["correct"]) for r in samples],
                                  answers if any(a is not None for a in answers) else None, ks))
    out["mean_tokens"] = mean(r["num_tokens"] for r in records)
    out["truncated"] = mean(float(r["finish_reason"] == "length") for r in records)
    return out


def metric_keys(problems: Sequence[dict]) -> list[str]:
    """Metric names present, in reading order: accuracy, pass@k by k, maj@k by k, reward, length, truncation."""
    present = {k for p in problems for k in p}
    at = sorted((k for k in present if "@" in k), key=lambda k: (k.split("@")[0] != "pass", int(k.split("@")[1])))
    return [k for k in ("accuracy", *at, "mean_reward", "mean_tokens", "truncated") if k in present]


def summarize(problems: Sequence[dict], groups: Sequence[str]) -> dict:
    """{"metrics": means over problems, "by_<group>": {value: {"n", means}}} for groups rows have."""
    keys = metric_keys(problems)
    out = {"metrics": group_means(problems, keys)}
    for g in groups:
        if any(g in p for p in problems):
            out[f"by_{g}"] = group_means(problems, keys, by=g)
    return out


def fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "mean_tokens":
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{100 * value:.1f}%"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def markdown(results: dict) -> str:
    """results.json as markdown: the headline metrics, then one table per breakdown."""
    metrics = results["metrics"]
    head = (f"# {results['benchmark']} ({results['split']}, {results['problems']} problems)\n\n"
            f"Model: `{results['model']}`; verifier: `{results['verifier']['name']}` "
            f"{results['verifier']['options'] or ''}; {results['samples_per_problem']} sample(s) per problem"
            f"{' + greedy' if results['greedy'] else ''}; {results['seconds']:.0f} s.\n\n")
    text = head + table(["metric", "value"], [[k, fmt(k, v)] for k, v in metrics.items()])
    for key, groups in results.items():
        if key.startswith("by_"):
            cols = list(metrics)
            rows = [[name, str(g["n"]), *(fmt(c, g.get(c)) for c in cols)] for name, g in groups.items()]
            text += f"\n## By {key[3:]}\n\n" + table([key[3:], "n", *cols], rows)
    return text
