#!/usr/bin/env bash
# Builds the libFuzzer target for the BPG decoder and runs it for a bounded time.
#
#   tfcomp/csrc/fuzz/run_fuzz.sh [SECONDS]      (default 60)
#
# Installs clang with apt-get if it is missing (root or sudo).  Work files go to
# build/bpg_fuzz/ (git-ignored): the binaries, the seed corpus (small valid BPG files
# written by our encoder, make_seeds.c), the growing corpus and crash artifacts.  The
# regression files in tests/data/bpg_fuzz_regressions/ are fed in as well.  Exits
# non-zero when the fuzzer finds a crash, a leak or a timeout; the input that triggered
# it is in build/bpg_fuzz/artifacts/ (copy it to the regression folder once fixed).
set -euo pipefail

SECS=${1:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
SRC="$HERE/../bpg"
WORK=${BPG_FUZZ_WORK:-$ROOT/build/bpg_fuzz}
REGRESSIONS="$ROOT/tests/data/bpg_fuzz_regressions"

if ! command -v clang >/dev/null 2>&1; then
    echo "installing clang (apt-get)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang
fi
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists x265 libde265; then
    echo "missing system packages: run apt-get install libx265-dev libde265-dev pkg-config" >&2
    exit 1
fi

mkdir -p "$WORK/corpus" "$WORK/seeds" "$WORK/artifacts"
read -r -a DE265 <<< "$(pkg-config --cflags --libs libde265)"
read -r -a X265 <<< "$(pkg-config --cflags --libs x265)"
CFLAGS=(-std=c11 -D_POSIX_C_SOURCE=200809L -g -I"$SRC")

echo "building $WORK/fuzz_bpg_decode"
clang "${CFLAGS[@]}" -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    "$HERE/fuzz_bpg_decode.c" "$SRC/bpg_common.c" "$SRC/bpg_dec.c" "${DE265[@]}" -lm -lpthread \
    -o "$WORK/fuzz_bpg_decode"

echo "writing seeds to $WORK/seeds"
clang "${CFLAGS[@]}" -O2 "$HERE/make_seeds.c" "$SRC/bpg_common.c" "$SRC/bpg_enc.c" \
    "${X265[@]}" -lm -lpthread -o "$WORK/make_seeds"
"$WORK/make_seeds" "$WORK/seeds"

DIRS=("$WORK/corpus" "$WORK/seeds")
[ -d "$REGRESSIONS" ] && DIRS+=("$REGRESSIONS")
echo "fuzzing for ${SECS}s"
exec "$WORK/fuzz_bpg_decode" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2560 \
    -max_len=4096 -dict="$HERE/bpg.dict" -print_final_stats=1 \
    -artifact_prefix="$WORK/artifacts/" "${DIRS[@]}"
