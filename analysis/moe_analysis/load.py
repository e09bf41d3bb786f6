"""Reading a study directory and its run files into plain dicts and numpy arrays.

A study directory holds one HDF5 run file per point (<id>.h5, docs/hdf5-schema.md) and,
when moe-study wrote it, index.json:
    {"study": name, "points": [{"id", "params": {...}, "file", "status",
                                "final_loss", "final_val_loss"}]}
Without index.json every *.h5 in the directory is a point and its parameters come from the
run file's /config TOML text.  Nothing here draws or writes; see tables.py and figures.py.
"""

import glob
import json
import math
import os
import tomllib  # Python >= 3.11 (Debian 12 has 3.11)

import numpy as np

# The step-time phases moe-train records under /train/time/<phase>, in step order; then the two
# that run files written before the forward/backward split have instead ("experts",
# "attention"). A figure uses the ones its runs have.
PHASES = ("embedding", "attention_fwd", "attention_bwd", "router", "dispatch", "experts_fwd",
          "experts_bwd", "combine", "loss", "rest", "optimizer", "experts", "attention")

# Keys that differ between the points of any study but say nothing about the model.
IGNORED_KEYS = ("output.path", "data.cache_dir")
SEED_KEY = "train.seed"


class StudyError(Exception):
    """Bad input: the message is one line naming the file or directory."""


def _flatten(table, prefix=""):
    out = {}
    for key, value in table.items():
        name = prefix + key
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def parse_config(text, path="run file"):
    """The run file's /config TOML text as a flat dict {"section.key": value}."""
    try:
        return _flatten(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{path}: /config is not valid TOML ({e})") from None


def _str(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _str(value[()])
    return value


def _array(group, name, dtype=float):
    if group is None or name not in group:
        return None
    return np.asarray(group[name][()], dtype=dtype)


def _layer_index(name):
    try:
        return int(name.split("_", 1)[1])
    except (IndexError, ValueError):
        return None


def read_run(path):
    """One run file as a plain dict; absent datasets are None (or empty dicts).

    {"path", "attrs": {name: value}, "config_text", "config": {"section.key": value},
     "train": {"step", "loss", "aux_loss", ..., "tokens_per_s"},
     "time": {phase: [steps] seconds},
     "eval": {"step", "val_loss", "val_ppl", "bucket_ppl" [evals, B], "bucket_min_count",
              "bucket_types", "ppl_frequent", "ppl_infrequent", "infrequent_val_share",
              "infrequent_train_mass", "infrequent_types"},
     "test": {"step", "loss", "ppl", "tokens"} (one row: the final model on the test split),
     "fluctuation": {layer: [evals, 3] (overall, frequent, infrequent)},
     "routing": {layer: {"tokens_per_expert" [steps, E], "dropped", "max_over_mean_load",
                         "router_entropy"}}}
    """
    import h5py

    with h5py.File(path, "r") as f:
        attrs = {k: _str(v) for k, v in f.attrs.items()}
        for k, v in attrs.items():
            if isinstance(v, np.generic):
                attrs[k] = v.item()
        config_text = _str(f["config"][()]) if "config" in f else ""
        train = f.get("train")
        run = {
            "path": path,
            "attrs": attrs,
            "config_text": config_text,
            "config": parse_config(config_text, path) if config_text else {},
            "train": {},
            "time": {},
            "eval": {},
            "test": {},
            "fluctuation": {},
            "routing": {},
        }
        if train is not None:
            for name in ("loss", "aux_loss", "balance_loss", "z_loss", "cluster_loss", "lr",
                         "grad_norm", "tokens_per_s"):
                run["train"][name] = _array(train, name)
            run["train"]["step"] = _array(train, "step", np.int64)
            if "time" in train:
                for name in train["time"]:
                    run["time"][name] = _array(train["time"], name)
        ev = f.get("eval")
        if ev is not None:
            run["eval"]["step"] = _array(ev, "step", np.int64)
            for name in ("val_loss", "val_ppl", "bucket_ppl", "bucket_min_count",
                         "bucket_types", "ppl_frequent", "ppl_infrequent",
                         "infrequent_val_share"):
                run["eval"][name] = _array(ev, name)
            # What the infrequent class covered (training-token mass and vocabulary types).
            for name in ("infrequent_train_mass", "infrequent_types"):
                v = ev.attrs.get(name)
                run["eval"][name] = float(v) if v is not None else math.nan
            if "fluctuation" in ev:
                for name in ev["fluctuation"]:
                    layer = _layer_index(name)
                    if layer is not None:
                        run["fluctuation"][layer] = _array(ev["fluctuation"], name)
        test = f.get("test")
        if test is not None:
            for name in ("step", "loss", "ppl", "tokens"):
                run["test"][name] = _array(test, name)
        if ev is not None:
            run["eval"]["tokens"] = _array(ev, "tokens")
        routing = f.get("routing")
        if routing is not None:
            for name in routing:
                layer = _layer_index(name)
                if layer is None:
                    continue
                g = routing[name]
                run["routing"][layer] = {
                    "tokens_per_expert": _array(g, "tokens_per_expert", np.int64),
                    "dropped": _array(g, "dropped", np.int64),
                    "max_over_mean_load": _array(g, "max_over_mean_load"),
                    "router_entropy": _array(g, "router_entropy"),
                }
    return run


def _last(a):
    return float(a[-1]) if a is not None and len(a) > 0 else math.nan


def tail_mean(a, fraction=0.1):
    """Mean of the last `fraction` of a series (at least one element)."""
    if a is None or len(a) == 0:
        return math.nan
    n = max(1, int(round(len(a) * fraction)))
    return float(np.mean(a[-n:]))


def run_metrics(run):
    """The per-point numbers of the summary table, from one run dict.

    final_train_loss: /train/loss[-1] (one batch: noisy); train_loss_tail: mean of
    /train/loss over the last 10% of steps; final_val_loss, final_val_ppl: /eval/val_loss[-1],
    /eval/val_ppl[-1]; gap: final_val_loss - train_loss_tail (the overfitting measure);
    ppl_frequent / ppl_infrequent at the last evaluation, next to what the infrequent class
    covered: infrequent_mass (its share of the training tokens), infrequent_val_share (of the
    evaluated validation tokens, last evaluation); tokens_per_s: median over steps;
    best_val_loss, best_val_ppl: the lowest /eval/val_loss of the run (where early stopping
    would have stopped) and its exp; test_loss, test_ppl: /test/loss[-1], /test/ppl[-1] (the
    final model on the test split); eval_tokens, test_tokens: the tokens those scored.
    """
    tr, ev = run["train"], run["eval"]
    loss = tr.get("loss")
    m = {
        "steps": int(len(loss)) if loss is not None else 0,
        "final_train_loss": _last(loss),
        "train_loss_tail": tail_mean(loss),
        "final_val_loss": _last(ev.get("val_loss")),
        "final_val_ppl": _last(ev.get("val_ppl")),
        "ppl_frequent": _last(ev.get("ppl_frequent")),
        "ppl_infrequent": _last(ev.get("ppl_infrequent")),
        "infrequent_mass": float(ev.get("infrequent_train_mass", math.nan)),
        "infrequent_val_share": _last(ev.get("infrequent_val_share")),
        "tokens_per_s": (float(np.median(tr["tokens_per_s"]))
                         if tr.get("tokens_per_s") is not None and len(tr["tokens_per_s"])
                         else math.nan),
    }
    te = run.get("test", {})
    m["test_loss"] = _last(te.get("loss"))
    m["test_ppl"] = _last(te.get("ppl"))
    m["test_tokens"] = _last(te.get("tokens"))
    m["eval_tokens"] = _last(ev.get("tokens"))
    val = ev.get("val_loss")
    m["best_val_loss"] = float(np.min(val)) if val is not None and len(val) else math.nan
    m["best_val_ppl"] = math.exp(m["best_val_loss"]) if not math.isnan(m["best_val_loss"]) else math.nan
    if math.isnan(m["final_val_ppl"]) and not math.isnan(m["final_val_loss"]):
        m["final_val_ppl"] = math.exp(m["final_val_loss"])
    m["gap"] = m["final_val_loss"] - m["train_loss_tail"]
    return m


NAN_METRICS = {k: math.nan for k in ("final_train_loss", "train_loss_tail", "final_val_loss",
                                       "final_val_ppl", "ppl_frequent", "ppl_infrequent",
                                       "infrequent_mass", "infrequent_val_share",
                                       "tokens_per_s", "gap", "best_val_loss",
                                       "best_val_ppl", "test_loss", "test_ppl",
                                       "test_tokens", "eval_tokens")}


def _read_index(study_dir):
    path = os.path.join(study_dir, "index.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            index = json.load(fh)
    except (OSError, ValueError) as e:
        raise StudyError("%s: unreadable or not JSON (%s)" % (path, str(e).splitlines()[0]))
    if not isinstance(index, dict) or not isinstance(index.get("points"), list):
        raise StudyError("%s: expected an object with a \"points\" list" % path)
    return index


def load_study(study_dir, warn=None):
    """The study as {"name", "dir", "has_index", "points": [point]}.

    point: {"id", "file", "status", "params" (index params, or the config when there is no
    index), "config" (flat config merged with params), "run" (read_run dict or None),
    "metrics" (run_metrics, NaN when there is no readable file), "note"}.
    Raises StudyError when the directory is missing or holds no readable run file.
    """
    warn = warn or (lambda msg: None)
    if not os.path.isdir(study_dir):
        raise StudyError("%s: not a directory (expected a study directory of run files)"
                         % study_dir)
    index = _read_index(study_dir)
    entries = []
    if index is not None:
        for i, p in enumerate(index["points"]):
            if not isinstance(p, dict):
                continue
            pid = str(p.get("id", "point%d" % i))
            fname = p.get("file") or (pid + ".h5")
            fpath = fname if os.path.isabs(fname) else os.path.join(study_dir, fname)
            entries.append({"id": pid, "file": fpath, "index_status": p.get("status"),
                            "params": dict(p.get("params") or {})})
        name = index.get("study") or os.path.basename(os.path.normpath(study_dir))
    else:
        for fpath in sorted(glob.glob(os.path.join(study_dir, "*.h5"))):
            pid = os.path.splitext(os.path.basename(fpath))[0]
            entries.append({"id": pid, "file": fpath, "index_status": None, "params": None})
        name = os.path.basename(os.path.normpath(os.path.abspath(study_dir)))

    points, readable = [], 0
    for e in entries:
        run, note = None, ""
        if os.path.exists(e["file"]):
            try:
                run = read_run(e["file"])
                readable += 1
            except Exception as exc:  # a file being written, or a broken one
                note = "unreadable: %s" % str(exc).splitlines()[0]
                warn("%s: %s" % (e["file"], note))
        # The run file is the truth: whatever the index says, a point whose file is gone is
        # "missing" and one whose file cannot be read is "unreadable" (never complete); only a
        # point the index calls pending may have no file.
        file_status = run["attrs"].get("status") if run else None
        if run is None and not note and e["index_status"] == "pending":
            status = "pending"  # never started: no file is expected yet
        elif run is None:
            status = "unreadable" if note else "missing"
            if not note:
                warn("%s: missing (index status %s)" % (e["file"], e["index_status"]))
        elif file_status == "complete" or e["index_status"] is None:
            status = file_status or "unreadable"
        else:
            status = e["index_status"]
        config = dict(run["config"]) if run else {}
        params = e["params"] if e["params"] is not None else dict(config)
        config.update(params)
        points.append({
            "id": e["id"], "file": e["file"], "status": status, "params": params,
            "config": config, "run": run, "note": note,
            "metrics": run_metrics(run) if run else dict(NAN_METRICS, steps=0),
        })
    if readable == 0:
        unreadable = sum(1 for p in points if p["note"])
        where = ("index.json lists no existing run file" if index is not None
                 else "no *.h5 run file") if not unreadable else \
            "no readable run file (%d %s)" % (unreadable, points[0]["note"])
        raise StudyError("%s: %s" % (study_dir, where))
    return {"name": name, "dir": study_dir, "has_index": index is not None, "points": points}


def complete_points(study):
    """Points whose run finished (status complete, file read): what aggregates use."""
    return [p for p in study["points"] if p["run"] is not None and p["status"] == "complete"]
