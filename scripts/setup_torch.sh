#!/usr/bin/env bash
# Installs the pinned PyTorch the gradient oracle test and benchmarks/vs_torch.py use into a
# virtual environment (default .venv-torch/ in the repository root, or $MOE_TORCH_VENV), from
# PyPI only: benchmarks/torch_reference/requirements.txt, with --no-deps (see that file for why
# the CUDA libraries are there and triton is not). Prints the environment's python on the last
# line. A second run finds the environment complete (same requirements, torch imports) and
# returns at once. Concurrent runs wait for each other (flock).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MOE_TORCH_VENV:-$repo/.venv-torch}"
req="$repo/benchmarks/torch_reference/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
check='import torch, numpy, h5py, tomllib; torch.ones(2, dtype=torch.float64).sum()'

ready() {
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$venv/bin/python" -c "$check" 2>/dev/null
}

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ready; then
  echo "$venv/bin/python"
  exit 0
fi

# Debian's python3 (3.11 on Debian 12); its venv module is the python3-venv package.
python=/usr/bin/python3
[[ -x "$python" ]] || python="$(command -v python3)"
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get install -y -qq python3-venv >/dev/null
  else
    echo "setup_torch.sh: $python has no venv module; install python3-venv" >&2
    exit 1
  fi
fi

start=$(date +%s)
echo "setup_torch.sh: installing $(grep -m1 '^torch==' "$req") (CPU use) into $venv" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$req" >&2
if ! "$venv/bin/python" -c "$check"; then
  echo "setup_torch.sh: torch does not import in $venv" >&2
  exit 1
fi
echo "$want" >"$stamp"
echo "setup_torch.sh: ready in $(($(date +%s) - start)) s" >&2
echo "$venv/bin/python"
