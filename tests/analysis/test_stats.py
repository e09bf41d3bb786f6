"""analysis/moe_analysis/stats.py against values worked out by hand (t tables, exact fits).

Run: python3 tests/analysis/test_stats.py (CTest analysis_stats).
"""

import math
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "analysis"))
from moe_analysis import stats  # noqa: E402

T_975_DF4 = 2.776445  # Student t, 97.5% quantile, 4 degrees of freedom (tables)


def close(a, b, tol=1e-4):
    assert abs(a - b) <= tol * max(1.0, abs(b)), (a, b)


def test_mean_ci():
    r = stats.mean_ci([1, 2, 3, 4, 5])
    half = T_975_DF4 * math.sqrt(2.5) / math.sqrt(5)  # sample sd sqrt(2.5), n = 5
    assert r["n"] == 5
    close(r["mean"], 3.0)
    close(r["lo"], 3.0 - half)
    close(r["hi"], 3.0 + half)
    one = stats.mean_ci([7.0])
    assert one["n"] == 1 and one["mean"] == 7.0 and math.isnan(one["lo"])
    flat = stats.mean_ci([2.0, 2.0, 2.0])
    assert flat["lo"] == flat["hi"] == 2.0


def runs_for_pairs():
    rows = []
    base = [5.0, 5.2, 4.9, 5.1, 5.3]
    delta = [0.4, 0.6, 0.5, 0.3, 0.7]  # topk - dense per seed: mean 0.5, sd sqrt(0.025)
    for s in range(5):
        rows.append({"router": "dense", "E": 1, "seed": s, "loss": base[s]})
        rows.append({"router": "topk", "E": 8, "seed": s, "loss": base[s] + delta[s]})
    rows.append({"router": "topk", "E": 8, "seed": 99, "loss": 1.0})  # no dense partner
    return pd.DataFrame(rows)


def test_paired_differences():
    df = runs_for_pairs()
    out = stats.paired_differences(df, "loss", df["router"] == "dense", on=["seed"],
                                   by=["router", "E"])
    assert len(out) == 1
    r = out.iloc[0]
    half = T_975_DF4 * math.sqrt(0.025) / math.sqrt(5)
    assert r["n"] == 5  # the unpaired seed 99 is left out
    close(r["mean"], 0.5)
    close(r["lo"], 0.5 - half)
    close(r["hi"], 0.5 + half)
    # t = 0.5 / (sqrt(0.025)/sqrt(5)) = 7.0711 on 4 df: two-sided p = 0.00211 (tables)
    close(r["p"], 0.00211, tol=2e-2)
    assert stats.verdict({"lo": r["lo"], "hi": r["hi"]}) == "no"  # topk is worse here


def runs_for_peak(noise):
    rng = np.random.default_rng(7)
    rows = []
    for s in range(6):
        for e in (1, 2, 4, 8, 16):
            val = 0.1 * (math.log2(e) - 2.0) ** 2 + noise * rng.standard_normal()
            rows.append({"E": e, "seed": s, "val": val, "test": val + 1.0})
    return pd.DataFrame(rows)


def test_bootstrap_peak_clear():
    df = runs_for_peak(noise=0.001)
    r = stats.bootstrap_peak(df, "E", "val", "test", n_resamples=500)
    assert r["peak"] == 4.0 and r["lo"] == 4.0 and r["hi"] == 4.0, r
    close(r["share"][4.0], 1.0)
    close(r["report"]["mean"], df[df["E"] == 4]["test"].mean())
    assert r["n_seeds"] == 6


def test_bootstrap_peak_ambiguous():
    # Flat in E with noise: the peak could be anywhere, the interval must say so.
    df = runs_for_peak(noise=0.0)
    df["val"] = np.random.default_rng(3).standard_normal(len(df))
    r = stats.bootstrap_peak(df, "E", "val", "test", n_resamples=500)
    assert r["hi"] / r["lo"] >= 4, r
    close(sum(r["share"].values()), 1.0)


def test_curvature_interaction():
    rows = []
    for s in range(5):
        for size, c in (("small", 0.10 + 0.01 * s), ("large", 0.02)):
            for e in (1, 2, 4, 8, 16, 32):
                lx = math.log2(e)
                rows.append({"E": e, "seed": s, "size": size,
                             "val": 3.0 - 0.3 * lx + c * lx * lx})
    df = pd.DataFrame(rows)
    per_seed = stats.curvature(df[df["size"] == "small"], "E", "val")
    np.testing.assert_allclose(per_seed.to_numpy(), [0.10, 0.11, 0.12, 0.13, 0.14], atol=1e-9)
    r = stats.curvature_interaction(df, "E", "val", "size", "small", "large")
    close(r["difference"]["mean"], 0.10)  # mean of 0.08 .. 0.12
    half = T_975_DF4 * math.sqrt(0.00025) / math.sqrt(5)  # sd of 0.08..0.12 is sqrt(2.5e-4)
    close(r["difference"]["lo"], 0.10 - half)
    assert stats.verdict(r["difference"], better_is_lower=False) == "yes"


def test_group_summary():
    df = runs_for_pairs()
    g = stats.group_summary(df[df["seed"] < 5], ["router"], "loss")
    assert list(g["router"]) == ["dense", "topk"]
    close(g.set_index("router").loc["dense", "mean"], 5.1)


if __name__ == "__main__":
    for name, fn in sorted(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print("ok", name)
