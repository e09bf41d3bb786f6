#!/usr/bin/env python3
"""Tables and figures from a moe-study directory.

    python3 analysis/report.py STUDY_DIR [--out DIR]

STUDY_DIR holds one HDF5 run file per point and index.json (written by moe-study); without
index.json every *.h5 in it is a point, its parameters read from the file's /config. Writes
into DIR (default STUDY_DIR/report): points.csv/.md (one row per point), groups.csv/.md
(mean and std over seeds), one PNG per applicable figure, and report.md linking them; with
several seeds, report.md has a statistics section (95% intervals, paired differences against
the dense model and against topk, the peak chosen on validation and reported on test, the
small- vs large-data curvature interaction) and scaling_ci.png.
Bad input (missing directory, no run files, unreadable index): one line on stderr, exit 2.
"""

import argparse
import collections
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import h5py  # noqa: F401
    import matplotlib  # noqa: F401
    import numpy  # noqa: F401
except ImportError as _missing:
    # Debian's python3-h5py/-matplotlib belong to /usr/bin/python3, which may not be the
    # python3 first on PATH (pyenv, venvs): try it once before giving up.
    _system = "/usr/bin/python3"
    if (os.path.exists(_system) and os.path.realpath(sys.executable) != os.path.realpath(_system)
            and not os.environ.get("MOE_REPORT_REEXEC")):
        os.environ["MOE_REPORT_REEXEC"] = "1"
        os.execv(_system, [_system, os.path.abspath(__file__)] + sys.argv[1:])
    sys.stderr.write("report.py: %s: install h5py, numpy and matplotlib (scripts/setup.sh)\n"
                     % _missing)
    sys.exit(2)

from moe_analysis import figures, scaling, tables  # noqa: E402
from moe_analysis.load import StudyError, complete_points, load_study  # noqa: E402


def _provenance(points):
    for p in points:
        if p["run"] is not None:
            a = p["run"]["attrs"]
            return a
    return {}


def write_report(study, out_dir, log=print):
    os.makedirs(out_dir, exist_ok=True)
    pts = study["points"]
    done = complete_points(study)

    pcols, prows = tables.point_rows(study)
    tables.write_csv(os.path.join(out_dir, "points.csv"), pcols, prows)
    with open(os.path.join(out_dir, "points.md"), "w", encoding="utf-8") as fh:
        fh.write(tables.markdown_table(pcols, prows))
    gcols, grows = tables.group_rows(study)
    tables.write_csv(os.path.join(out_dir, "groups.csv"), gcols, grows)
    with open(os.path.join(out_dir, "groups.md"), "w", encoding="utf-8") as fh:
        fh.write(tables.markdown_table(gcols, grows))

    made, skipped = [], []
    for stem, title, fn in figures.FIGURES:
        path = os.path.join(out_dir, stem + ".png")
        if os.path.exists(path):
            os.remove(path)  # a figure from an earlier report that no longer applies
        if not done:
            skipped.append((title, "no complete run"))
            continue
        try:
            with warnings.catch_warnings():  # all-NaN slices (first fluctuation) are expected
                warnings.simplefilter("ignore", RuntimeWarning)
                caption = fn(done, path)
            made.append((stem, title, caption))
        except figures.Skip as e:
            skipped.append((title, str(e)))

    # Statistics over seeds: intervals, paired differences, the peak, the interaction.
    result = scaling.analyze(done) if done else None
    ci_path = os.path.join(out_dir, "scaling_ci.png")
    for stale in [ci_path] + [os.path.join(out_dir, "stats_%s.csv" % n)
                              for n in scaling.CSV_NAMES]:
        if os.path.exists(stale):
            os.remove(stale)  # from an earlier report
    stat_lines, ci_caption, stat_csvs = [], None, []
    if result is not None:
        stat_lines = scaling.section(result)
        ci_caption = scaling.figure(result, ci_path)
        stat_csvs = scaling.write_csvs(result, out_dir)

    status = collections.Counter(p["status"] for p in pts)
    prov = _provenance(pts)
    md = ["# Study report: %s" % study["name"], ""]
    md.append("Study directory: `%s` (%s). Points: %d (%s)." % (
        study["dir"], "index.json" if study["has_index"] else "no index.json: every *.h5, "
        "parameters from each file's /config", len(pts),
        ", ".join("%d %s" % (n, s) for s, n in sorted(status.items()))))
    lost = [p for p in pts if p["status"] in ("missing", "unreadable")]
    if lost:
        md.append("")
        md.append("**Run files missing or unreadable** (left out of every table but points): %s."
                  % ", ".join("`%s` (%s)" % (p["id"], p["status"]) for p in lost))
    if prov:
        md.append("")
        md.append("Data: %s. Build: moe-suite %s (%s), Kokkos %s, gemm %s, device %s." % (
            prov.get("data_description", "?"), prov.get("suite_version", "?"),
            prov.get("git_commit", "?"), prov.get("kokkos_backend", "?"),
            prov.get("gemm_backend", "?"), prov.get("device", "?")))
    md += ["", "## Summary over seeds", "",
           "Mean ± sample standard deviation over the seeds of each group (complete runs "
           "only). val loss: `/eval/val_loss[-1]` (nats/token); val ppl: `/eval/val_ppl[-1]`; "
           "gap: val loss minus the mean training loss over the last 10% of steps; ppl "
           "frequent / infrequent: `/eval/ppl_frequent[-1]`, `/eval/ppl_infrequent[-1]`, next "
           "to what the infrequent class covered: its share of the training tokens "
           "(`/eval` attribute `infrequent_train_mass`) and of the evaluated validation tokens "
           "(`/eval/infrequent_val_share[-1]`).", ""]
    md.append(tables.markdown_groups(gcols, grows) if grows else "*No complete run.*\n")
    md.append("Full tables: [groups.csv](groups.csv), [groups.md](groups.md) (all statistics), "
              "[points.csv](points.csv), [points.md](points.md) (one row per point, every "
              "status).")
    if stat_lines:
        md += [""] + stat_lines
        if ci_caption:
            md += ["![test perplexity with 95% intervals](scaling_ci.png)", "", ci_caption, ""]
        md.append("Tables: " + ", ".join("[%s](%s)" % (n, n) for n in stat_csvs) + ".")
    md += ["", "## Figures", ""]
    for stem, title, caption in made:
        md += ["### %s" % title, "", "![%s](%s.png)" % (title, stem), "", caption, ""]
    if skipped:
        md += ["### Skipped", ""]
        md += ["- %s: %s." % (title, why) for title, why in skipped]
        md.append("")
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(md))
    log("report: %d points (%d complete), %d figures, %d skipped -> %s" % (
        len(pts), len(done), len(made), len(skipped), os.path.join(out_dir, "report.md")))
    return made, skipped


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study_dir", help="directory of run files (and index.json)")
    ap.add_argument("--out", help="output directory (default STUDY_DIR/report)")
    args = ap.parse_args(argv)
    notes = []
    try:
        study = load_study(args.study_dir, warn=notes.append)
    except StudyError as e:
        sys.stderr.write("report.py: %s\n" % e)
        return 2
    for w in notes:
        sys.stderr.write("report.py: warning: %s\n" % w)
    out = args.out or os.path.join(args.study_dir, "report")
    write_report(study, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
