#!/usr/bin/env bash
# Installs the Debian 12 packages moe-suite needs. Idempotent: when every package is already
# installed it only checks (about a second); otherwise one apt-get update + install.
set -euo pipefail

PACKAGES=(
  build-essential cmake git pkg-config
  libtrilinos-kokkos-dev                 # Kokkos 3.4.01, Serial backend
  mpich libmpich-dev                     # MPI
  libhdf5-mpich-dev hdf5-tools           # parallel HDF5 + h5dump
  libtomlplusplus-dev                    # TOML config parsing
  nlohmann-json3-dev libcli11-dev        # JSON (study index) and command lines
  libopenblas-dev                        # CBLAS on the host
  libgtest-dev                           # unit tests
  libsentencepiece-dev bible-kjv         # tokenizers, the KJV corpus
  python3 python3-h5py python3-numpy python3-matplotlib  # analysis scripts and file checks
  python3-scipy python3-pandas           # statistics over seeds (analysis/moe_analysis/stats.py)
  slurm-wlm munge                        # the local SLURM cluster of tests/slurm
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
echo "setup: done"
