#!/usr/bin/env bash
# Installs the Debian 12 packages eve needs to build, test and run. Idempotent:
# when everything is present it only checks and returns in well under a second.
set -euo pipefail

packages=(
  # build
  cmake g++ make pkg-config ccache
  # libraries
  libtorch-dev libgloo-dev libopenblas0-openmp
  libturbojpeg0-dev libpng-dev libsentencepiece-dev sentencepiece
  libcli11-dev libfmt-dev nlohmann-json3-dev libgtest-dev
  # reference implementations used by the tests and benchmarks (Debian's /usr/bin/python3)
  python3-torch python3-numpy python3-pil python3-sentencepiece
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

sudo_cmd=()
if ((${#missing[@]})) || dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q 'install ok installed'; then
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo_cmd=(sudo)
    else
      echo "install-deps: need root to install: ${missing[*]:-(openblas alternative fix)}; run as root or install sudo" >&2
      exit 1
    fi
  fi
fi

if ((${#missing[@]})); then
  echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  # --no-install-recommends keeps libopenblas0 (the pthread metapackage) out.
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The pthread flavour of OpenBLAS wins the alternatives by priority if it is present and
# oversubscribes with OpenMP; pin the openmp flavour whenever both are installed.
arch_dir=/usr/lib/x86_64-linux-gnu
if [[ -e $arch_dir/openblas-openmp/libblas.so.3 ]]; then
  for alt in libblas.so.3 liblapack.so.3; do
    want=$arch_dir/openblas-openmp/$alt
    cur=$(readlink -f "/etc/alternatives/$alt-x86_64-linux-gnu" 2>/dev/null || true)
    if [[ $cur != "$(readlink -f "$want")" ]]; then
      "${sudo_cmd[@]}" update-alternatives --quiet --set "$alt-x86_64-linux-gnu" "$want"
    fi
  done
fi
exit 0
