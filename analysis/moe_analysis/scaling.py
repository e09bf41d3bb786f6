"""The report's statistics over seeds: does quality peak as experts are added (the upper bound),
does the curve bend more with less data, and do the other routers move it?

Every number comes with a 95% interval from moe_analysis.stats (scipy): means per point,
paired per-seed differences (same seed = same initialisation draw, batches and router
randomness), the peak expert count chosen on validation and reported on test with a bootstrap
interval over seeds, and the small-data vs large-data curvature interaction. Losses are in
nats/token; a difference of d nats is a perplexity ratio of exp(d).
"""

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import stats  # noqa: E402
from .load import SEED_KEY  # noqa: E402
from .tables import num_experts, router_of  # noqa: E402

SIZE_KEY = "data.train_tokens"
# The tables written as stats_<name>.csv (write_csvs), in this order.
CSV_NAMES = ("points", "vs_dense", "vs_topk", "own_scaling", "peaks", "interaction")


def frame(points):
    """One row per complete point: router, experts, data size, seed and the losses."""
    rows = []
    for p in points:
        m = p["metrics"]
        rows.append({"router": router_of(p), "experts": num_experts(p),
                     "train_tokens": int(p["config"].get(SIZE_KEY, 0) or 0),
                     "seed": p["config"].get(SEED_KEY, 0), "val_loss": m["final_val_loss"],
                     "test_loss": m["test_loss"], "gap": m["gap"],
                     "eval_tokens": m.get("eval_tokens", math.nan),
                     "test_tokens": m.get("test_tokens", math.nan)})
    return pd.DataFrame(rows)


def _ci(c, digits=3, scale=1.0):
    if c["n"] == 0 or math.isnan(c["mean"]):
        return ""
    if math.isnan(c["lo"]):
        return "%.*f (n=%d)" % (digits, scale * c["mean"], c["n"])
    return "%.*f [%.*f, %.*f]" % (digits, scale * c["mean"], digits, scale * c["lo"], digits,
                                  scale * c["hi"])


def _ppl_ci(c):
    """A loss interval shown as perplexity (exp is monotone: the interval maps over)."""
    if c["n"] == 0 or math.isnan(c["mean"]):
        return ""
    if math.isnan(c["lo"]):
        return "%.2f" % math.exp(c["mean"])
    return "%.2f [%.2f, %.2f]" % (math.exp(c["mean"]), math.exp(c["lo"]), math.exp(c["hi"]))


def _table(cols, rows):
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return out


def _size_name(n):
    return "%gk tokens" % (n / 1e3) if n < 1e6 else "%gM tokens" % (n / 1e6)


def _topk_curve(df, size):
    """Dense (E = 1) and topk points of one data size: the scaling curve."""
    d = df[(df.train_tokens == size) & df.router.isin(["dense", "topk"])]
    return d


def point_stats(df):
    """Per (data size, router, experts): n and the 95% intervals of val/test loss and the gap."""
    rows = []
    for (size, router, e), g in df.groupby(["train_tokens", "router", "experts"], sort=True):
        row = {"train_tokens": size, "router": router, "experts": e, "n": len(g)}
        for m in ("val_loss", "test_loss", "gap"):
            c = stats.mean_ci(g[m])
            row.update({m + "_mean": c["mean"], m + "_lo": c["lo"], m + "_hi": c["hi"]})
        rows.append(row)
    return pd.DataFrame(rows)


def _row_ci(r, m):
    return {"n": r["n"], "mean": r[m + "_mean"], "lo": r[m + "_lo"], "hi": r[m + "_hi"]}


def point_table(ps):
    cols = ["data", "router", "experts", "seeds", "val ppl [95% CI]", "test ppl [95% CI]",
            "val - train gap (nats)"]
    rows = [{"data": _size_name(r["train_tokens"]), "router": r["router"],
             "experts": int(r["experts"]), "seeds": int(r["n"]),
             "val ppl [95% CI]": _ppl_ci(_row_ci(r, "val_loss")),
             "test ppl [95% CI]": _ppl_ci(_row_ci(r, "test_loss")),
             "val - train gap (nats)": _ci(_row_ci(r, "gap"))} for _, r in ps.iterrows()]
    return _table(cols, rows)


def _diff_rows(diffs, label):
    rows = []
    for _, r in diffs.iterrows():
        c = {"n": r["n"], "mean": r["mean"], "lo": r["lo"], "hi": r["hi"]}
        rows.append({**label(r), "pairs": int(r["n"]),
                     "test loss difference (nats) [95% CI]": _ci(c, 4),
                     "test ppl ratio": "%.3f" % math.exp(r["mean"]),
                     "p": "%.3g" % r["p"], "lower loss?": stats.verdict(c)})
    return rows


def paired_stats(df):
    """Per-seed differences of test loss: each MoE point against the dense model (same seed and
    data size), and each other router against topk at the same experts (same seed and data)."""
    vs_dense = stats.paired_differences(df, "test_loss", df.router == "dense",
                                        on=["seed", "train_tokens"],
                                        by=["train_tokens", "router", "experts"])
    sub = df[df.router != "dense"]
    vs_topk = pd.DataFrame()
    if (~sub.router.isin(["topk"])).any() and (sub.router == "topk").any():
        vs_topk = stats.paired_differences(sub, "test_loss", sub.router == "topk",
                                           on=["seed", "train_tokens", "experts"],
                                           by=["train_tokens", "router", "experts"])
    return vs_dense, vs_topk


def _change(curve, e_from, e_to):
    """mean_ci over seeds of test loss at e_to minus at e_from (seeds having both)."""
    at = lambda e: curve[curve.experts == e].set_index("seed").test_loss  # noqa: E731
    both = pd.concat([at(e_to).rename("to"), at(e_from).rename("from")], axis=1).dropna()
    return stats.mean_ci(both["to"] - both["from"])


def own_scaling(df):
    """Per data size and router: test loss at the largest minus at the smallest of the expert
    counts every non-dense router of that size shares (e.g. 64 vs 8), paired by seed. Negative:
    the router still gains from more experts there; positive: it has passed its peak."""
    rows = []
    for size, d in df[df.router != "dense"].groupby("train_tokens", sort=True):
        shared = set.intersection(*(set(g.experts) for _, g in d.groupby("router")))
        if len(shared) < 2:
            continue
        lo_e, hi_e = min(shared), max(shared)
        for router, g in d.groupby("router", sort=True):
            c = _change(g, lo_e, hi_e)
            rows.append({"train_tokens": size, "router": router, "from_experts": lo_e,
                         "to_experts": hi_e, "n": c["n"], "mean": c["mean"], "lo": c["lo"],
                         "hi": c["hi"], "still_gains": stats.verdict(c)})
    return pd.DataFrame(rows)


def own_scaling_table(d):
    cols = ["data", "router", "experts", "pairs", "test loss change (nats) [95% CI]",
            "test ppl ratio", "lower loss with more experts?"]
    rows = [{"data": _size_name(r["train_tokens"]), "router": r["router"],
             "experts": "%d -> %d" % (r["from_experts"], r["to_experts"]), "pairs": int(r["n"]),
             "test loss change (nats) [95% CI]": _ci(r, 4),
             "test ppl ratio": "%.3f" % math.exp(r["mean"]),
             "lower loss with more experts?": r["still_gains"]} for _, r in d.iterrows()]
    return _table(cols, rows)


def paired_tables(vs_dense, vs_topk):
    lines = []
    cols = ["data", "router", "experts", "pairs", "test loss difference (nats) [95% CI]",
            "test ppl ratio", "p", "lower loss?"]
    label = lambda r: {"data": _size_name(r["train_tokens"]), "router": r["router"],  # noqa
                       "experts": int(r["experts"])}
    for title, d in (("Against the dense model (same seed, same data)", vs_dense),
                     ("Against topk at the same number of experts (same seed, same data)",
                      vs_topk)):
        if len(d):
            lines += ["### " + title, ""] + _table(cols, _diff_rows(d, label)) + [""]
    return lines


def peaks(df):
    """Per data size: the topk/dense peak chosen on validation, reported on test, and whether the
    largest expert count is significantly worse than the peak on test (the upper bound)."""
    out = []
    for size in sorted(df.train_tokens.unique()):
        curve = _topk_curve(df, size)
        if curve.experts.nunique() < 2 or curve.seed.nunique() < 2:
            continue
        try:
            pk = stats.bootstrap_peak(curve, "experts", "val_loss", "test_loss")
        except ValueError:  # no two seeds with every expert count
            continue
        top = curve.experts.max()
        turn = _change(curve, pk["peak"], top)
        significance = stats.verdict(turn, better_is_lower=False)  # "yes": largest is worse
        if pk["peak"] == top:
            bound = "no: still improving at the largest count"
        elif pk["peak"] == curve.experts.min():
            bound = ("experts never help here: the peak is the smallest count; the largest is "
                     + {"yes": "significantly worse", "no": "better",
                        "not significant": "not significantly worse"}.get(significance,
                                                                          significance))
        else:
            bound = {"yes": "yes: rises to a peak, then significantly worse",
                     "no": "no: the largest count is better",
                     "not significant": "not significant"}.get(significance, significance)
        out.append({"size": size, "peak": pk, "top": int(top), "turn": turn, "bound": bound})
    return out


def peak_lines(found):
    cols = ["data", "peak experts (on validation)", "95% bootstrap CI", "resamples choosing it",
            "test ppl at the peak", "test loss at %s - at the peak (nats)" % "the largest E",
            "upper bound?"]
    rows = []
    for f in found:
        pk = f["peak"]
        rows.append({"data": _size_name(f["size"]), "peak experts (on validation)": int(pk["peak"]),
                     "95% bootstrap CI": "%g .. %g" % (pk["lo"], pk["hi"]),
                     "resamples choosing it": "%.0f%%" % (100 * pk["share"][pk["peak"]]),
                     "test ppl at the peak": _ppl_ci(pk["report"]),
                     "test loss at %s - at the peak (nats)" % "the largest E":
                         "E=%d: %s" % (f["top"], _ci(f["turn"], 4)),
                     "upper bound?": f["bound"]})
    return _table(cols, rows) if rows else []


def interaction(df):
    sizes = sorted(df.train_tokens.unique())
    if len(sizes) < 2:
        return None
    small, large = sizes[0], sizes[-1]
    curve = df[df.router.isin(["dense", "topk"])]
    try:
        out = stats.curvature_interaction(curve, "experts", "test_loss", "train_tokens", small,
                                          large)
    except ValueError:
        return None
    out.update(small_size=small, large_size=large)
    return out


def _design_fits(points):
    """True when every swept key other than the seed is the router, the expert count, the data
    size or a function of them (e.g. MaskMoE's visible_experts zipped with num_experts): the
    groups of this module then hold only seeds. A mask-ratio or cluster-size study does not."""
    keys = set()
    for p in points:
        keys.update(p["params"].keys())
    cell = {}
    for k in keys - {SEED_KEY, SIZE_KEY, "router.type", "model.num_experts"}:
        if k.startswith("output."):  # where each run was written
            continue
        for p in points:
            at = (router_of(p), num_experts(p), p["config"].get(SIZE_KEY), k)
            v = repr(p["config"].get(k))
            if cell.setdefault(at, v) != v:
                return False
    return True


def analyze(points):
    """All the statistics as DataFrames (None when the study has < 2 seeds, no test loss, or
    sweeps something else than router, experts and data size): points, vs_dense, vs_topk,
    peaks, interaction."""
    if not _design_fits(points):
        return None
    df = frame(points)
    if df.empty or df.seed.nunique() < 2 or df.test_loss.isna().all():
        return None
    vs_dense, vs_topk = paired_stats(df)
    found = peaks(df)
    peak_rows = pd.DataFrame([{
        "train_tokens": f["size"], "peak_experts": f["peak"]["peak"],
        "peak_lo": f["peak"]["lo"], "peak_hi": f["peak"]["hi"],
        "peak_share": f["peak"]["share"][f["peak"]["peak"]],
        "test_loss_at_peak": f["peak"]["report"]["mean"], "largest_experts": f["top"],
        "turn_mean": f["turn"]["mean"], "turn_lo": f["turn"]["lo"], "turn_hi": f["turn"]["hi"],
        "upper_bound": f["bound"]} for f in found])
    inter = interaction(df)
    inter_rows = pd.DataFrame([{
        "small_tokens": inter["small_size"], "large_tokens": inter["large_size"],
        **{"%s_%s" % (k, q): inter[k][q] for k in ("small", "large", "difference")
           for q in ("mean", "lo", "hi")}, "p": inter["p"],
        "bends_more_with_less_data": stats.verdict(inter["difference"], better_is_lower=False)}]
    ) if inter else pd.DataFrame()
    return {"frame": df, "points": point_stats(df), "vs_dense": vs_dense, "vs_topk": vs_topk,
            "own_scaling": own_scaling(df),
            "peaks": peak_rows, "found": found, "interaction": inter_rows, "inter": inter}


def write_csvs(result, out_dir):
    """stats_<name>.csv per table (full precision), for tests and further analysis."""
    names = []
    for name in CSV_NAMES:
        d = result[name]
        if len(d):
            d.to_csv(os.path.join(out_dir, "stats_%s.csv" % name), index=False)
            names.append("stats_%s.csv" % name)
    return names


def section(result):
    """The report's markdown lines for the statistics over seeds."""
    df = result["frame"]
    md = ["## Statistics over seeds (95% intervals)", "",
          "Final model of each run; validation chooses, test reports. Intervals: Student t "
          "over seeds for means and paired per-seed differences (scipy.stats.ttest_1samp), "
          "percentile bootstrap over whole seeds for the peak (scipy.stats.bootstrap, 2000 "
          "resamples). Evaluated tokens per run: validation %s, test %s." % (
              "/".join(str(int(v)) for v in sorted(df.eval_tokens.dropna().unique())) or "?",
              "/".join(str(int(v)) for v in sorted(df.test_tokens.dropna().unique())) or "?"),
          ""]
    md += point_table(result["points"]) + [""]
    md += paired_tables(result["vs_dense"], result["vs_topk"])
    if len(result["own_scaling"]):
        md += ["### Each router from fewer to more experts (same seed, same data)", ""]
        md += own_scaling_table(result["own_scaling"]) + [""]
    if result["found"]:
        md += ["### The peak and the upper bound (topk and dense)", ""]
        md += peak_lines(result["found"]) + [""]
    inter = result["inter"]
    if inter:
        md += ["### Does the curve bend more with less data?", "",
               "Curvature = the quadratic coefficient of test loss fitted against log2(experts) "
               "per seed (> 0: the curve turns up). Small data (%s): %s; large data (%s): %s; "
               "difference small - large: %s (p = %.3g): **%s**." % (
                   _size_name(inter["small_size"]), _ci(inter["small"], 4),
                   _size_name(inter["large_size"]), _ci(inter["large"], 4),
                   _ci(inter["difference"], 4), inter["p"],
                   stats.verdict(inter["difference"], better_is_lower=False)), ""]
    return md


def figure(result, path):
    """Test perplexity against experts with 95% intervals, one panel per data size."""
    df = result["frame"]
    if df.experts.nunique() < 2:
        return None
    sizes = sorted(df.train_tokens.unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4.2), squeeze=False)
    markers = {"topk": "o", "moec": "s", "maskmoe": "^", "hash": "D", "expert_choice": "v"}
    for ax, size in zip(axes[0], sizes):
        d = df[df.train_tokens == size]
        routers = [r for r in ["topk", "moec", "maskmoe", "hash", "expert_choice"]
                   if r in set(d.router)]
        for i, router in enumerate(routers):
            sub = d[d.router.isin([router, "dense"] if router == "topk" else [router])]
            s = stats.group_summary(sub, ["experts"], "test_loss")
            x = s.experts.to_numpy(dtype=float) * (1.06 ** i)  # offset overlapping markers
            y = np.exp(s["mean"].to_numpy(dtype=float))
            lo = y - np.exp(s.lo.to_numpy(dtype=float))
            hi = np.exp(s.hi.to_numpy(dtype=float)) - y
            ax.errorbar(x, y, yerr=np.nan_to_num([lo, hi]), marker=markers.get(router, "o"),
                        capsize=3, label=router + (" (E=1: dense)" if router == "topk" else ""),
                        linestyle="-" if router == "topk" else "none")
        ax.set_xscale("log", base=2)
        es = sorted(d.experts.unique())
        ax.set_xticks(es)
        ax.set_xticklabels([str(e) for e in es])
        ax.set_xlabel("experts per MoE layer (log2)")
        ax.set_ylabel("test perplexity (final model)")
        ax.set_title("%s, %d seeds (bars: 95%% CI)" % (_size_name(size), d.seed.nunique()),
                     fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return ("Test perplexity of the final model against the number of experts, mean over seeds "
            "with 95% Student-t intervals; one panel per training-data size.")
