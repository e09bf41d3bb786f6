"""The report's figures (matplotlib, Agg backend).

Each figure function takes the list of complete points and an output path, draws one PNG and
returns a caption, or raises Skip(reason) when the study has no variation (or data) for it.
"""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .load import PHASES, SEED_KEY  # noqa: E402
from .tables import (SHORT, fmt_value, group_points, label, mean_std,  # noqa: E402
                     num_experts, router_of, varying_keys)

E_KEY = "model.num_experts"


class Skip(Exception):
    """The figure does not apply to this study; the message says why (for report.md)."""


def _follows(points, key, xkey):
    """True when `key` is a function of `xkey` among `points` (a zipped axis, e.g. MaskMoE's
    visible_experts = num_experts): such a key must not split a curve drawn against xkey."""
    seen = {}
    for p in points:
        x, v = p["config"].get(xkey), p["config"].get(key)
        if seen.setdefault(x, v) != v:
            return False
    return len(seen) > 1


def _series(points, exclude):
    """Points split into curves by every varying key except `exclude` (and the seed). With
    num_experts excluded, keys zipped to num_experts within a router do not split its curve."""
    keys = [k for k in varying_keys(points) if k not in exclude and k != SEED_KEY]
    groups = group_points(points, keys)
    if E_KEY in exclude:
        by_router = {}
        for _, members in groups:
            by_router.setdefault(router_of(members[0]), []).extend(members)
        keep = []
        for k in keys:
            varies = [ms for ms in by_router.values() if len(_distinct(ms, k)) > 1]
            zipped = bool(varies) and all(_follows(ms, k, E_KEY) for ms in varies)
            if not zipped:
                keep.append(k)
        if keep != keys:
            keys = keep
            groups = group_points(points, keys)
    return [(label(m[0], keys), m) for _, m in groups]


def _distinct(points, key):
    return sorted({p["config"].get(key) for p in points if p["config"].get(key) is not None},
                  key=lambda v: (str(type(v)), v))


def _by_x(members, key):
    """{x: [points]} for one curve."""
    out = {}
    for p in members:
        out.setdefault(p["config"].get(key), []).append(p)
    return dict(sorted(out.items(), key=lambda kv: kv[0]))


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _curve(ax, members, xkey, metric, name, **kw):
    xs, ys, es = [], [], []
    for x, pts in _by_x(members, xkey).items():
        mean, std, n = mean_std([p["metrics"][metric] for p in pts])
        if n == 0:
            continue
        xs.append(x)
        ys.append(mean)
        es.append(0.0 if math.isnan(std) else std)
    if xs:
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name, **kw)
    return len(xs)


def _dense_reference(ax, points, metric):
    dense = [p for p in points if router_of(p) == "dense"]
    for name, members in _series(dense, exclude=(E_KEY,)):
        mean, std, n = mean_std([p["metrics"][metric] for p in members])
        if n:
            ax.axhline(mean, color="gray", linestyle="--", linewidth=1)
            ax.errorbar([1], [mean], yerr=[0.0 if math.isnan(std) else std], marker="s",
                        color="gray", capsize=3, label=name + " (E=1)")


def _experts_axis(ax, values):
    ax.set_xscale("log", base=2)
    ax.set_xticks(values)
    ax.set_xticklabels([str(v) for v in values])
    ax.set_xlabel("experts per MoE layer (num_experts, log2)")


def _need_expert_variation(points):
    values = _distinct(points, E_KEY)
    if len(values) < 2:
        raise Skip("model.num_experts does not vary (%s)" % (values or "absent"))
    return values


def upper_bound(points, path):
    """Validation perplexity against num_experts, one curve per router (mean ± std over seeds)."""
    values = _need_expert_variation(points)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    moe = [p for p in points if router_of(p) != "dense"]
    for ax, metric, title in ((axes[0], "final_val_ppl", "at the end of training"),
                              (axes[1], "best_val_ppl", "best during training")):
        for name, members in _series(moe, exclude=(E_KEY,)):
            _curve(ax, members, E_KEY, metric, name)
        _dense_reference(ax, points, metric)
        _experts_axis(ax, values)
        ax.set_ylabel("validation perplexity")
        ax.set_title(title + " (error bars: std over seeds)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)
    return ("Validation perplexity against the number of experts, one curve per router, at the "
            "end of training (left) and the best over training (right, what early stopping "
            "keeps); the dense model (E=1) dashed. A curve that turns up is the upper bound of "
            "scaling the experts.")


def overfitting(points, path):
    """Train (last 10% of steps) and validation loss, and their gap, against num_experts."""
    values = _need_expert_variation(points)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.4))
    moe = [p for p in points if router_of(p) != "dense"]
    for i, (name, members) in enumerate(_series(moe, exclude=(E_KEY,))):
        color = "C%d" % (i % 10)
        _curve(a, members, E_KEY, "final_val_loss", name + " val", color=color)
        _curve(a, members, E_KEY, "train_loss_tail", name + " train", color=color,
               linestyle=":")
        _curve(b, members, E_KEY, "gap", name, color=color)
    _dense_reference(b, points, "gap")
    for ax in (a, b):
        _experts_axis(ax, values)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    a.set_ylabel("loss (nats/token)")
    a.set_title("train (dotted, last 10% of steps) and validation loss")
    b.set_ylabel("validation - train loss (nats/token)")
    b.set_title("generalisation gap (overfitting)")
    _save(fig, path)
    return ("Left: final validation loss and the training loss over the last 10% of steps. "
            "Right: their difference; a gap growing with the experts is overfitting.")


def _largest_e(points):
    """Per curve (all varying keys but num_experts and seed), the points at its largest E."""
    out = []
    for name, members in _series(points, exclude=(E_KEY,)):
        top = max(num_experts(p) for p in members)
        out.append((name, top, [p for p in members if num_experts(p) == top]))
    return out


def _total_load(run):
    """Per-expert token copies summed over training, as a share, averaged over layers."""
    shares = []
    for layer in sorted(run["routing"]):
        tpe = run["routing"][layer]["tokens_per_expert"]
        if tpe is None or tpe.size == 0:
            continue
        tot = tpe.sum(axis=0).astype(float)
        if tot.sum() > 0:
            shares.append(tot / tot.sum())
    if not shares:
        return None
    return np.mean(np.stack(shares), axis=0)


def _cv(share):
    return float(np.std(share) / np.mean(share)) if share is not None else math.nan


def expert_load(points, path):
    """Sparse data allocation: sorted per-expert loads, and load imbalance against E."""
    routed = [p for p in points if router_of(p) != "dense" and p["run"]["routing"]]
    if not routed:
        raise Skip("no MoE run with /routing data")
    vary_e = len(_distinct(routed, E_KEY)) > 1
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    a, b = axes
    for name, top, members in _largest_e(routed):
        shares = [s for s in (_total_load(p["run"]) for p in members) if s is not None]
        if not shares:
            continue
        sorted_mean = np.mean(np.stack([np.sort(s)[::-1] for s in shares]), axis=0)
        a.plot(np.arange(1, top + 1), sorted_mean * top, marker=".",
               label="%s (E=%d)" % (name, top) if vary_e else name)
    a.axhline(1.0, color="gray", linestyle="--", linewidth=1)
    a.set_xlabel("expert, by load (1 = busiest)")
    a.set_ylabel("load / mean load (summed over training)")
    a.set_title("expert loads at the largest num_experts")
    if vary_e:
        for name, members in _series(routed, exclude=(E_KEY,)):
            xs, ys, es = [], [], []
            for x, pts in _by_x(members, E_KEY).items():
                mean, std, n = mean_std([_cv(_total_load(p["run"])) for p in pts])
                if n:
                    xs.append(x)
                    ys.append(mean)
                    es.append(0.0 if math.isnan(std) else std)
            if xs:
                b.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name)
        _experts_axis(b, _distinct(routed, E_KEY))
        b.set_ylabel("coefficient of variation of expert loads")
        b.set_title("load imbalance against num_experts")
    else:
        for name, top, members in _largest_e(routed):
            curves = []
            for p in members:
                per_layer = [r["max_over_mean_load"] for r in p["run"]["routing"].values()
                             if r["max_over_mean_load"] is not None]
                if per_layer:
                    curves.append(np.mean(np.stack(per_layer), axis=0))
            if curves:
                n = min(len(c) for c in curves)
                b.plot(np.arange(n), np.mean([c[:n] for c in curves], axis=0), label=name)
        b.set_xlabel("step")
        b.set_ylabel("max / mean expert load (mean over layers)")
        b.set_title("load imbalance over training")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)
    return ("Sparse data allocation. Left: the experts' shares of all token copies routed in "
            "training, sorted, relative to an even split (1.0), at each router's largest "
            "num_experts (mean over seeds and layers). Right: " +
            ("the coefficient of variation of those loads against num_experts." if vary_e
             else "the max/mean expert load per step."))


def bucket_ppl(points, path):
    """Validation perplexity per token-frequency bucket (0 = most frequent), per router."""
    have = [p for p in points if p["run"]["eval"].get("bucket_ppl") is not None
            and p["run"]["eval"]["bucket_ppl"].size]
    if not have:
        raise Skip("no /eval/bucket_ppl in the run files")
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    nb = 0
    for name, top, members in _largest_e(have):
        rows = [p["run"]["eval"]["bucket_ppl"][-1] for p in members]
        nb = max(nb, len(rows[0]))
        mean = np.nanmean(np.stack(rows), axis=0)
        name = name if router_of(members[0]) == "dense" or len(_distinct(have, E_KEY)) < 2 \
            else "%s (E=%d)" % (name, top)
        ax.plot(np.arange(len(mean)), mean, marker="o", label=name)
    types = have[0]["run"]["eval"].get("bucket_types")
    ticks = ["%d" % b for b in range(nb)]
    if types is not None and len(types) == nb:
        ticks = ["%d\n(%d types)" % (b, int(types[b])) for b in range(nb)]
    ax.set_xticks(np.arange(nb))
    ax.set_xticklabels(ticks)
    ax.set_yscale("log")
    ax.set_xlabel("frequency bucket (equal training-token mass; 0 = most frequent)")
    ax.set_ylabel("validation perplexity (final evaluation)")
    ax.set_title("perplexity by token frequency")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7)
    _save(fig, path)
    return ("Validation perplexity of the target tokens in each frequency bucket at the final "
            "evaluation (mean over seeds; the largest num_experts per router). MaskMoE's claim "
            "is lower perplexity in the rare buckets.")


def fluctuation(points, path):
    """Routing fluctuation (share of probe tokens whose top-1 expert changed) over training."""
    have = [p for p in points if p["run"]["fluctuation"]
            and any(np.isfinite(a).any() for a in p["run"]["fluctuation"].values()
                    if a is not None)]
    if not have:
        raise Skip("no routing fluctuation data (dense runs only, or one evaluation)")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    vary_e = len(_distinct(have, E_KEY)) > 1
    for i, (name, top, members) in enumerate(_largest_e(have)):
        curves, steps = [], None
        for p in members:
            layers = [a for a in p["run"]["fluctuation"].values() if a is not None]
            curves.append(np.nanmean(np.stack(layers), axis=0) if layers else None)
            steps = p["run"]["eval"]["step"]
        curves = [c for c in curves if c is not None]
        n = min(len(c) for c in curves)
        mean = np.nanmean(np.stack([c[:n] for c in curves]), axis=0)
        for ax, col in zip(axes, (0, 2)):
            ax.plot(steps[:n], mean[:, col], marker=".", color="C%d" % (i % 10),
                    label="%s (E=%d)" % (name, top) if vary_e else name)
    for ax, title in zip(axes, ("all probe tokens", "infrequent tokens")):
        ax.set_xlabel("training step")
        ax.set_title("routing fluctuation: " + title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("share of tokens whose top-1 expert changed")
    _save(fig, path)
    return ("Routing fluctuation between consecutive evaluations on a fixed probe batch (mean "
            "over layers and seeds), for all tokens and for the infrequent ones.")


def _param_study(points, path, router, xkey, linekey, xlabel, title):
    sub = [p for p in points if router_of(p) == router]
    xs = _distinct(sub, xkey)
    if not sub:
        raise Skip("no complete %s run" % router)
    if len(xs) < 2:
        raise Skip("%s does not vary among %s runs" % (xkey, router))
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, members in _series(sub, exclude=(xkey, "router.type")):
        if linekey not in varying_keys(sub):  # name the line's value even when it is fixed
            v = members[0]["config"].get(linekey)
            name += " " + SHORT.get(linekey, linekey + "={v}").format(v=fmt_value(v))
        _curve(ax, members, xkey, "final_val_ppl", name)
    # Other routers at the same num_experts as horizontal references.
    es = set(num_experts(p) for p in sub)
    others = [p for p in points if router_of(p) not in (router, "dense")
              and num_experts(p) in es]
    for i, (name, members) in enumerate(_series(others, exclude=())):
        mean, _, n = mean_std([p["metrics"]["final_val_ppl"] for p in members])
        if n:
            ax.axhline(mean, linestyle="--", linewidth=1, color="C%d" % ((i + 5) % 10),
                       label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation perplexity (final)")
    ax.set_title(title + " (lines: %s)" % linekey.split(".")[-1])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def mask_ratio(points, path):
    """MaskMoE: validation perplexity against mask_ratio, one curve per visible_experts."""
    _param_study(points, path, "maskmoe", "router.mask_ratio", "router.visible_experts",
                 "router.mask_ratio (share of tokens routed to one expert)",
                 "MaskMoE mask ratio")
    return ("MaskMoE: final validation perplexity against the mask ratio, one curve per "
            "visible_experts (and any other swept key); other routers dashed.")


def cluster_size(points, path):
    """MoEC: validation perplexity against cluster_size, one curve per expert_dropout."""
    _param_study(points, path, "moec", "router.cluster_size", "router.expert_dropout",
                 "router.cluster_size (experts per cluster)", "MoEC cluster size")
    return ("MoEC: final validation perplexity against the cluster size, one curve per "
            "expert_dropout (and any other swept key); other routers dashed.")


def step_time(points, path):
    """Mean seconds per training step in each phase, stacked, per group."""
    have = [p for p in points if p["run"]["time"]
            and sum(float(np.sum(a)) for a in p["run"]["time"].values() if a is not None) > 0]
    if not have:
        raise Skip("no /train/time data in the run files")
    groups = _series(have, exclude=())
    phases = [ph for ph in PHASES if any(ph in p["run"]["time"] for p in have)]
    phases += sorted({ph for p in have for ph in p["run"]["time"]} - set(phases))
    fig, ax = plt.subplots(figsize=(max(6.4, 0.6 * len(groups) + 2), 4.8))
    bottom = np.zeros(len(groups))
    for j, ph in enumerate(phases):
        vals = []
        for _, members in groups:
            per = []
            for p in members:
                a = p["run"]["time"].get(ph)
                if a is not None and len(a):
                    per.append(float(np.mean(a[1:] if len(a) > 1 else a)))  # step 0 warms up
            vals.append(1e3 * float(np.mean(per)) if per else 0.0)
        ax.bar(np.arange(len(groups)), vals, bottom=bottom, label=ph, color="C%d" % (j % 10))
        bottom += np.asarray(vals)
    ax.set_xticks(np.arange(len(groups)))
    ax.set_xticklabels([g[0] for g in groups], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("ms per training step (mean, step 0 excluded)")
    ax.set_title("step-time breakdown")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, axis="y", alpha=0.3)
    _save(fig, path)
    return ("Mean wall time per training step by phase (forward, backward and optimizer of "
            "each part), per group, mean over seeds.")


# (file stem, title, function), in report order.
FIGURES = (
    ("upper_bound", "Validation perplexity against the number of experts", upper_bound),
    ("overfitting", "Train/validation gap against the number of experts", overfitting),
    ("expert_load", "Tokens per expert (sparse data allocation)", expert_load),
    ("bucket_ppl", "Perplexity by frequency bucket", bucket_ppl),
    ("fluctuation", "Routing fluctuation over training", fluctuation),
    ("mask_ratio", "MaskMoE mask-ratio study", mask_ratio),
    ("cluster_size", "MoEC cluster-size study", cluster_size),
    ("step_time", "Step-time breakdown", step_time),
)
