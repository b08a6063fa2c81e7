#!/bin/sh
# Install what nnc needs from Debian's archive (Debian 12), only what is missing.
#   build: make gcc clang libclang-rt-14-dev (sanitizer and fuzzer runtimes) flex bison
#   tests: python3-torch python3-torchvision python3-numpy
#   demo data: dataset-fashion-mnist
#   cross tests (tests/cross/run_cross.py): gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user (aarch64 under
#     qemu), gcc-arm-none-eabi libnewlib-arm-none-eabi (Cortex-M)
#   embedded example (tests/embedded/run_embedded.py): qemu-system-arm (the mps2-an500 board, a Cortex-M7)
# Silent and fast when everything is present; otherwise runs `apt-get update` once,
# installs the missing packages (printing one line saying which) and fails loudly.
# Run as root (or with sudo available).
set -u

PACKAGES="make gcc clang libclang-rt-14-dev flex bison python3-torch python3-torchvision python3-numpy dataset-fashion-mnist gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $pkg"
    fi
done
missing=${missing# }
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "deps.sh: error: missing packages ($missing) and not root; run as root: apt-get install $missing" >&2
    exit 1
fi

echo "deps.sh: installing $missing"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! $SUDO apt-get update -q >"$log" 2>&1; then
    cat "$log" >&2
    echo "deps.sh: error: apt-get update failed" >&2
    exit 1
fi
# shellcheck disable=SC2086  # word splitting of the package list is intended
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "deps.sh: error: apt-get install failed for: $missing" >&2
    exit 1
fi
exit 0
