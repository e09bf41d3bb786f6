"""Statistics over seeds: means with 95% intervals, paired per-seed differences, the peak expert
count with a bootstrap interval (selected on one metric, reported on another) and the
small-data vs large-data curvature interaction.

Every interval comes from scipy (Student t for means and paired differences, the percentile
bootstrap over seeds for the peak); nothing here re-derives a formula. Inputs are pandas
DataFrames with one row per run: the swept parameters, a seed column and metric columns.
"""

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95


def mean_ci(values, level=LEVEL):
    """n, mean and the Student-t interval of the mean (NaN bounds below two values)."""
    v = np.asarray(pd.Series(values).dropna(), dtype=float)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": np.nan, "lo": np.nan, "hi": np.nan}
    if n < 2 or np.all(v == v[0]):
        return {"n": n, "mean": float(v.mean()), "lo": np.nan if n < 2 else float(v[0]),
                "hi": np.nan if n < 2 else float(v[0])}
    ci = stats.ttest_1samp(v, 0.0).confidence_interval(level)
    return {"n": n, "mean": float(v.mean()), "lo": float(ci.low), "hi": float(ci.high)}


def _groups(df, by):
    """(key tuple, rows) per group of the columns `by`, whatever their number."""
    by = list(by)
    for key, g in df.groupby(by[0] if len(by) == 1 else by, sort=True, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), g


def group_summary(df, by, metric, level=LEVEL):
    """One row per group of `by`: n, mean of `metric` and its interval."""
    rows = []
    for key, g in _groups(df, by):
        rows.append({**dict(zip(by, key)), **mean_ci(g[metric], level)})
    return pd.DataFrame(rows)


def paired_differences(df, metric, baseline, on, by, level=LEVEL):
    """Per-seed differences `metric - metric(baseline)` and their interval per group.

    baseline: a boolean Series (rows of the reference, e.g. the dense model, or top-k).
    on: the columns a row and its reference must share (the seed, the data size, and e.g.
        num_experts when comparing routers at equal E).
    by: the columns naming the compared groups (e.g. router, num_experts).
    Returns one row per group with n pairs, the mean difference, its interval and the
    two-sided p-value of a paired t-test; rows that are their own reference are left out.
    """
    ref = df[baseline][list(on) + [metric]].rename(columns={metric: "_ref"})
    if ref.duplicated(list(on)).any():
        raise ValueError(f"the reference has several rows for one value of {list(on)}")
    pairs = df[~baseline].merge(ref, on=list(on), how="inner")
    rows = []
    for key, g in _groups(pairs, by):
        d = (g[metric] - g["_ref"]).to_numpy(dtype=float)
        row = {**dict(zip(by, key)), **mean_ci(d, level)}
        row["p"] = float(stats.ttest_1samp(d, 0.0).pvalue) if len(d) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _by_seed(df, x, metric, seed):
    """seeds x values-of-x table of `metric`, keeping only seeds with every x."""
    t = df.pivot_table(index=seed, columns=x, values=metric, aggfunc="mean")
    return t.dropna(axis=0, how="any").sort_index(axis=1)


def bootstrap_peak(df, x, select, report, seed="seed", n_resamples=2000, random_state=0,
                   level=LEVEL):
    """The x (e.g. num_experts) with the lowest mean `select` (validation), its interval when
    seeds are resampled (paired: a resample draws whole seeds), and `report` (test) there.

    Returns a dict: peak (x at the minimum of the seed-mean of `select`), lo/hi (percentile
    bootstrap interval of the peak, in x units), share (fraction of resamples choosing each x),
    report (mean_ci of `report` at the peak) and n_seeds.
    """
    sel = _by_seed(df, x, select, seed)
    rep = _by_seed(df, x, report, seed).reindex(index=sel.index, columns=sel.columns)
    xs = np.asarray(sel.columns, dtype=float)
    if len(sel) < 2 or len(xs) < 2:
        raise ValueError(f"a peak needs >= 2 seeds with every {x} and >= 2 values of {x}")
    log_x = np.log2(xs)

    def peak_of(*cols, axis=-1):
        means = np.stack([np.mean(c, axis=axis) for c in cols], axis=-1)
        return log_x[np.argmin(means, axis=-1)]

    columns = tuple(sel[c].to_numpy(dtype=float) for c in sel.columns)
    boot = stats.bootstrap(columns, peak_of, paired=True, vectorized=True, method="percentile",
                           n_resamples=n_resamples, random_state=random_state,
                           confidence_level=level)
    at = int(np.argmin(sel.mean(axis=0).to_numpy()))
    peak = float(xs[at])
    chosen = np.exp2(boot.bootstrap_distribution)
    share = {float(v): float(np.mean(np.isclose(chosen, v))) for v in xs}
    return {"peak": peak, "lo": float(np.exp2(boot.confidence_interval.low)),
            "hi": float(np.exp2(boot.confidence_interval.high)), "share": share,
            "report": mean_ci(rep.iloc[:, at], level),
            "n_seeds": int(len(sel))}


def curvature(df, x, metric, seed="seed"):
    """Per seed, the quadratic coefficient of `metric` fitted against log2(x): > 0 means the
    curve bends up again (an upper bound), 0 a straight line in log2(x)."""
    t = _by_seed(df, x, metric, seed)
    lx = np.log2(np.asarray(t.columns, dtype=float))
    if len(lx) < 3:
        raise ValueError(f"a curvature needs >= 3 values of {x}")
    coef = np.polynomial.polynomial.polyfit(lx, t.to_numpy(dtype=float).T, 2)
    return pd.Series(coef[2], index=t.index, name="curvature")


def curvature_interaction(df, x, metric, size, small, large, seed="seed", level=LEVEL):
    """Curvature at data size `small` minus at `large`, paired by seed, with its interval.

    A positive difference means the curve bends more when data is scarcer, the claim of the
    scaling upper bound.
    """
    a = curvature(df[df[size] == small], x, metric, seed)
    b = curvature(df[df[size] == large], x, metric, seed)
    both = pd.concat([a.rename("small"), b.rename("large")], axis=1).dropna()
    out = {"small": mean_ci(a, level), "large": mean_ci(b, level),
           "difference": mean_ci(both["small"] - both["large"], level)}
    d = (both["small"] - both["large"]).to_numpy(dtype=float)
    out["p"] = float(stats.ttest_1samp(d, 0.0).pvalue) if len(d) > 1 else np.nan
    return out


def verdict(ci, better_is_lower=True):
    """'yes' / 'no' / 'not significant' for a difference interval (e.g. model - reference)."""
    lo, hi = ci["lo"], ci["hi"]
    if np.isnan(lo) or np.isnan(hi):
        return "not enough seeds"
    if hi < 0:
        return "yes" if better_is_lower else "no"
    if lo > 0:
        return "no" if better_is_lower else "yes"
    return "not significant"
