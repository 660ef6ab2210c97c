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
  # real pictures for tests/cli/rank_dupes_photos.sh (three wallpapers, 0.8 MB, no dependencies)
  lxde-common
  # peers of the benchmarks only (make bench; the tests never need them)
  python3-faiss  # tests/bench/bench_rank_faiss.sh: faiss's exact inner-product index
  chromium  # headless: tests/cli/report.sh checks that the eve-report pages render
)

missing=()
# dpkg-query exits 1 when some package was never installed: that is the normal case here.
installed=$({ dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null || true; } |
  awk '$NF == "installed" && $(NF-1) == "ok" {print $1}')
for p in "${packages[@]}"; do
  grep -qxF "$p" <<<"$installed" || missing+=("$p")
done

# The pthread flavour of OpenBLAS wins the alternatives by priority when it is present and
# oversubscribes with OpenMP: the openmp flavour must be the selected one.
arch_dir=/usr/lib/$(uname -m)-linux-gnu
blas_fixes=()
for alt in libblas.so.3 liblapack.so.3; do
  want=$arch_dir/openblas-openmp/$alt
  link=/etc/alternatives/$alt-$(uname -m)-linux-gnu
  if [[ -e $want && -e $link && $(readlink -f "$link") != "$(readlink -f "$want")" ]]; then
    blas_fixes+=("$alt-$(uname -m)-linux-gnu=$want")
  fi
done

((${#missing[@]} || ${#blas_fixes[@]})) || exit 0

as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: root is needed to install: ${missing[*]:-} ${blas_fixes[*]:-}" >&2
    echo "install-deps: run this script as root, or install sudo" >&2
    exit 1
  fi
fi

if ((${#missing[@]})); then
  echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  # --no-install-recommends keeps the libopenblas0 metapackage (pthread flavour) out.
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  exec bash "$0" "$@"  # re-check, and fix the BLAS alternative if needed
fi

for fix in "${blas_fixes[@]}"; do
  echo "install-deps: selecting ${fix#*=} for ${fix%%=*}" >&2
  "${as_root[@]}" update-alternatives --quiet --set "${fix%%=*}" "${fix#*=}"
done
exit 0
