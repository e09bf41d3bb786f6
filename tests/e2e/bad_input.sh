#!/usr/bin/env bash
# Bad input to moe-train: each case must print exactly one line on stderr that names the key
# (or file, or option), exit with code 2, and leave no output file behind.
# usage: bad_input.sh MOE_TRAIN
set -u
TRAIN=$1
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
expect missing_file    "nope.toml"              --config "$dir/nope.toml"
expect broken_toml     "broken.toml"            --config "$dir/broken.toml"
expect bad_option      "--frobnicate"           --frobnicate
OUTPATH="$dir/no/such/dir/x.h5" expect bad_output_dir "no/such/dir/x.h5" --set train.steps=1
exit $fail
