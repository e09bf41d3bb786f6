#!/usr/bin/env bash
# Bad input to moe-train: each case must print exactly one line on stderr that names the key
# (or file, or option), exit with code 2, and leave no output file behind. Then every program's
# bad arguments (not a number, out of range, unknown option, missing value): one line naming
# the option, exit 2; and --help: exit 0 with the usage on stdout.
# usage: bad_input.sh MOE_TRAIN (the other programs are taken from the same directory)
set -u
TRAIN=$1
BIN=$(dirname "$TRAIN")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0

# expect NAME NEEDLE ARGS...: run moe-train ARGS --output $dir/NAME.h5 and check.
expect() {
  local name=$1 needle=$2
  shift 2
  local out=${OUTPATH:-"$dir/$name.h5"}
  "$TRAIN" "$@" --output "$out" >"$dir/stdout" 2>"$dir/stderr"
  local rc=$?
  local lines
  lines=$(wc -l <"$dir/stderr")
  if [ "$rc" -ne 2 ]; then echo "FAIL $name: exit $rc, want 2"; fail=1; fi
  if [ "$lines" -ne 1 ]; then echo "FAIL $name: $lines stderr lines, want 1:"; cat "$dir/stderr"; fail=1; fi
  if ! grep -qF -- "$needle" "$dir/stderr"; then
    echo "FAIL $name: stderr does not name '$needle':"; cat "$dir/stderr"; fail=1
  fi
  if [ -e "$out" ]; then echo "FAIL $name: output file left behind"; fail=1; fi
  [ "$fail" -eq 0 ] && echo "ok   $name: $(cat "$dir/stderr")"
}

printf '[model]\nd_modle = 64\n' >"$dir/typo.toml"
printf '[model]\nd_model = "wide"\n' >"$dir/type.toml"
printf '[model\nd_model = 64\n' >"$dir/broken.toml"

expect unknown_key     "model.d_modle"          --config "$dir/typo.toml"
expect unknown_set     "train.stepz"            --set train.stepz=3
expect wrong_type      "model.d_model"          --config "$dir/type.toml"
expect wrong_type_set  "train.steps"            --set train.steps=1.5
expect top_k           "model.top_k"            --set model.num_experts=2 --set model.top_k=3
expect negative_cf     "router.capacity_factor" --set router.capacity_factor=-1
expect heads           "model.n_heads"          --set model.d_model=30 --set model.n_heads=4
expect zero_layers     "model.n_layers"         --set model.n_layers=0
expect bad_router      "router.type"            --set router.type=sinkhorn
expect bad_precision   "train.matmul_precision" --set train.matmul_precision=fp16
expect missing_file    "nope.toml"              --config "$dir/nope.toml"
expect broken_toml     "broken.toml"            --config "$dir/broken.toml"
expect bad_option      "--frobnicate"           --frobnicate
OUTPATH="$dir/no/such/dir/x.h5" expect bad_output_dir "no/such/dir/x.h5" --set train.steps=1

# expect_arg PROGRAM NEEDLE ARGS...: one stderr line naming NEEDLE, exit 2.
expect_arg() {
  local prog=$1 needle=$2
  shift 2
  "$BIN/$prog" "$@" >"$dir/stdout" 2>"$dir/stderr"
  local rc=$? lines
  lines=$(wc -l <"$dir/stderr")
  local name="$prog $*"
  if [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ] || ! grep -qF -- "$needle" "$dir/stderr"; then
    echo "FAIL $name: exit $rc (want 2), $lines stderr lines (want 1 naming '$needle'):"
    cat "$dir/stderr"
    fail=1
  else
    echo "ok   $name: $(cat "$dir/stderr")"
  fi
}

# expect_help PROGRAM [SUBCOMMAND]: --help exits 0 with the usage on stdout and nothing on stderr.
expect_help() {
  "$BIN/$1" "${@:2}" --help >"$dir/stdout" 2>"$dir/stderr"
  local rc=$?
  if [ "$rc" -ne 0 ] || ! grep -q "^Usage: $1" "$dir/stdout" || [ -s "$dir/stderr" ]; then
    echo "FAIL $* --help: exit $rc (want 0), usage on stdout, empty stderr:"
    cat "$dir/stdout" "$dir/stderr"
    fail=1
  else
    echo "ok   $* --help"
  fi
}

#          program             needle            arguments
expect_arg moe-train           "--stop-after"    --stop-after abc
expect_arg moe-train           "--stop-after"    --stop-after 0
expect_arg moe-train           "--bogus"         --bogus
expect_arg moe-train           "--stop-after"    --stop-after
expect_arg moe-train           "--output"        --output ""
expect_arg moe-study           "--point"         s.toml --point abc
expect_arg moe-study           "--ranks-per-run" s.toml --ranks-per-run 0
expect_arg moe-study           "--bogus"         s.toml --bogus
expect_arg moe-study           "--stop-after"    s.toml --stop-after
expect_arg moe-study           "study"
expect_arg moe-bench           "--steps"         --steps abc
expect_arg moe-bench           "--steps"         --steps 0
expect_arg moe-bench           "--bogus"         --bogus
expect_arg moe-bench           "--steps"         --steps
expect_arg moe-data            "train.steps"     prepare --set train.steps=abc
expect_arg moe-data            "model.d_model"   prepare --set model.d_model=0
expect_arg moe-data            "--bogus"         prepare --bogus
expect_arg moe-data            "--set"           prepare --set
expect_arg moe-data            "frobnicate"      frobnicate
expect_arg moe-router-bench    "--tokens"        --tokens abc
expect_arg moe-router-bench    "--experts"       --experts 0
expect_arg moe-router-bench    "--bogus"         --bogus
expect_arg moe-router-bench    "--reps"          --reps
expect_arg moe-alltoall-bench  "--iters"         --iters abc
expect_arg moe-alltoall-bench  "--factor"        --factor 1
expect_arg moe-alltoall-bench  "--bogus"         --bogus
expect_arg moe-alltoall-bench  "--warmup"        --warmup
for prog in moe-train moe-study moe-bench moe-router-bench moe-alltoall-bench; do
  expect_help $prog
done
expect_help moe-data prepare
exit $fail
