"""Which parameters vary, grouping over seeds, and the summary tables (CSV and Markdown)."""

import csv
import math

import numpy as np

from .load import IGNORED_KEYS, SEED_KEY, complete_points

ROUTER_ORDER = ("dense", "topk", "hash", "maskmoe", "moec", "expert_choice")

# Keys that only mean something for one router (left out of that router's labels otherwise).
ROUTER_SPECIFIC = {
    "router.mask_ratio": "maskmoe", "router.visible_experts": "maskmoe",
    "router.mask_by": "maskmoe", "router.mask_per_layer": "maskmoe",
    "router.cluster_size": "moec", "router.cluster_loss_weight": "moec",
    "router.cluster_loss": "moec", "router.expert_dropout": "moec",
    "router.dropout_mode": "moec", "router.dropout_interval": "moec",
    "router.hash_table": "hash",
}

SHORT = {
    "router.type": "{v}", "model.num_experts": "E={v}", "model.top_k": "k={v}",
    "router.mask_ratio": "mask={v}", "router.visible_experts": "V={v}",
    "router.cluster_size": "cluster={v}", "router.expert_dropout": "dropout={v}",
    "router.cluster_loss_weight": "cl_w={v}", "router.capacity_factor": "cf={v}",
    "train.seed": "seed={v}",
}

POINT_METRICS = ("steps", "final_train_loss", "train_loss_tail", "final_val_loss",
                 "final_val_ppl", "best_val_loss", "best_val_ppl", "test_loss", "test_ppl", "gap", "ppl_frequent",
                 "ppl_infrequent", "infrequent_mass", "infrequent_val_share", "tokens_per_s")
GROUP_METRICS = ("final_val_loss", "final_val_ppl", "best_val_loss", "best_val_ppl", "test_loss",
                 "test_ppl", "gap",
                 "train_loss_tail", "ppl_frequent", "ppl_infrequent", "infrequent_mass",
                 "infrequent_val_share")


def router_of(point):
    """The router of a point; num_experts = 1 is the dense model whatever router.type says."""
    if num_experts(point) == 1:
        return "dense"
    return str(point["config"].get("router.type", "topk"))


def num_experts(point):
    return int(point["config"].get("model.num_experts", 1))


def _hashable(v):
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def _router_key(k):
    return k.startswith("router.") and k != "router.type" or k == "model.top_k"


def varying_keys(points):
    """Config keys (section.key) whose values differ between the points, seed included.

    Points without a readable run file (pending, failed to start) know only their index
    params and do not count; nor do the dense model's router settings (it has no router).
    """
    read = [p for p in points if p.get("run") is not None] or list(points)
    keys = set()
    for p in read:
        keys.update(p["config"].keys())
    out = []
    for k in sorted(keys):
        if k in IGNORED_KEYS:
            continue
        among = [p for p in read if not (_router_key(k) and router_of(p) == "dense")]
        values = {_hashable(p["config"].get(k)) for p in among}
        if k == "router.type":
            values = {router_of(p) for p in read}
        if len(values) > 1:
            out.append(k)
    # router type and num_experts first: they name the curves.
    first = [k for k in ("router.type", "model.num_experts") if k in out]
    return first + [k for k in out if k not in first]


def fmt_value(v):
    if isinstance(v, float):
        return "%g" % v
    return str(v)


def label(point, keys):
    """A short human label for a point from the given keys, e.g. 'maskmoe E=8 mask=0.5'."""
    router = router_of(point)
    parts = [router]
    for k in keys:
        if k == "router.type":
            continue
        if router == "dense" and (k.startswith("router.") or k == "model.top_k"):
            continue
        owner = ROUTER_SPECIFIC.get(k)
        if owner is not None and owner != router:
            continue
        v = point["config"].get(k)
        fmt = SHORT.get(k, k.split(".")[-1] + "={v}")
        parts.append(fmt.format(v=fmt_value(v)))
    return " ".join(parts)


def _sort_value(v):
    if isinstance(v, str) and v in ROUTER_ORDER:
        return (0, ROUTER_ORDER.index(v), "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (1, float(v), "")
    return (2, 0.0, str(v))


def group_points(points, keys):
    """Points grouped by their values of `keys`, as [(key_values dict, [points])], sorted."""
    groups = {}
    for p in points:
        vals = tuple(_hashable(p["config"].get(k)) for k in keys)
        if router_of(p) == "dense":
            # The dense model has no router: its router settings do not split it.
            vals = tuple("dense" if k == "router.type" else (None if _router_key(k) else v)
                         for k, v in zip(keys, vals))
        groups.setdefault(vals, []).append(p)
    out = [(dict(zip(keys, vals)), members) for vals, members in groups.items()]
    out.sort(key=lambda kv: tuple(_sort_value(kv[0][k]) for k in keys))
    return out


def mean_std(values):
    """(mean, sample std (ddof=1; NaN for one value), n) over the finite values."""
    a = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = int(a.size)
    if n == 0:
        return math.nan, math.nan, 0
    return float(np.mean(a)), (float(np.std(a, ddof=1)) if n > 1 else math.nan), n


def point_rows(study):
    """One row per point of the study (every status), as (columns, rows)."""
    pts = study["points"]
    keys = [k for k in varying_keys(pts) if k != SEED_KEY]
    cols = ["id", "status"] + keys + [SEED_KEY] + list(POINT_METRICS)
    rows = []
    for p in pts:
        row = {"id": p["id"], "status": p["status"]}
        for k in keys + [SEED_KEY]:
            row[k] = p["config"].get(k, "")
        row.update({m: p["metrics"].get(m, math.nan) for m in POINT_METRICS})
        rows.append(row)
    return cols, rows


def group_rows(study):
    """Complete points grouped over seeds (all varying keys but train.seed): mean, std, n."""
    pts = complete_points(study)
    keys = [k for k in varying_keys(pts) if k != SEED_KEY]
    cols = ["group"] + keys + ["n"]
    for m in GROUP_METRICS:
        cols += [m + "_mean", m + "_std"]
    cols += ["seeds", "ids"]
    rows = []
    for kv, members in group_points(pts, keys):
        row = {"group": label(members[0], keys)}
        row.update({k: ("" if kv[k] is None else kv[k]) for k in keys})
        row["n"] = len(members)
        for m in GROUP_METRICS:
            mean, std, _ = mean_std([p["metrics"][m] for p in members])
            row[m + "_mean"], row[m + "_std"] = mean, std
        row["seeds"] = ";".join(str(p["config"].get(SEED_KEY, "")) for p in members)
        row["ids"] = ";".join(p["id"] for p in members)
        rows.append(row)
    return cols, rows


def _cell(v, digits=4):
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return "%.*g" % (digits + 2, v) if abs(v) >= 1000 else "%.*f" % (digits, v)
    return str(v)


def write_csv(path, cols, rows):
    """Full-precision CSV (repr of floats; NaN as empty)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            out = []
            for c in cols:
                v = r.get(c, "")
                if isinstance(v, float):
                    out.append("" if math.isnan(v) else repr(v))
                else:
                    out.append(v)
            w.writerow(out)


def markdown_table(cols, rows, digits=4):
    head = "| " + " | ".join(cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(_cell(r.get(c, ""), digits) for c in cols) + " |" for r in rows]
    return "\n".join([head, sep] + body) + "\n"


def markdown_groups(cols, rows):
    """The grouped table with mean ± std columns (compact, for report.md)."""
    show = ["group", "n", "seeds", "val loss", "val ppl", "test ppl", "val - train gap",
            "ppl frequent",
            "ppl infrequent", "infrequent: train mass / val tokens"]
    out = []
    for r in rows:
        def pm(m):
            mean, std = r[m + "_mean"], r[m + "_std"]
            if math.isnan(mean):
                return ""
            return _cell(mean) + ("" if math.isnan(std) else " ± " + _cell(std))
        o = {"group": r["group"], "n": r["n"], "val loss": pm("final_val_loss"),
             "val ppl": pm("final_val_ppl"), "test ppl": pm("test_ppl"),
             "val - train gap": pm("gap"),
             "ppl frequent": pm("ppl_frequent"), "ppl infrequent": pm("ppl_infrequent"),
             "infrequent: train mass / val tokens": (
                 "" if math.isnan(r["infrequent_mass_mean"]) else "%.1f%% / %.1f%%" % (
                     100 * r["infrequent_mass_mean"], 100 * r["infrequent_val_share_mean"]))}
        o["seeds"] = r.get("seeds", "")
        out.append(o)
    return markdown_table(show, out)
