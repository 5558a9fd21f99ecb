/*
 * libFuzzer target for the BPG header parser and decoder (tfcomp/csrc/bpg).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I../bpg fuzz_bpg_decode.c \
 *         ../bpg/bpg_common.c ../bpg/bpg_dec.c $(pkg-config --cflags --libs libde265)
 *
 * run_fuzz.sh builds it, makes a seed corpus with the encoder and runs it.
 * Pictures are capped at 2^20 pixels to keep iterations fast and small.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpg.h"

#define FUZZ_MAX_PIXELS (1u << 20)

static void check_message(const char *err)
{
    /* the message must be a terminated, non-empty string */
    if (memchr(err, 0, BPG_ERR_SIZE) == NULL || err[0] == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[BPG_ERR_SIZE];
    bpg_info info;
    int ret, channels;
    size_t n;
    uint8_t *dst;

    memset(err, 0, sizeof(err));
    ret = bpg_parse_header(data, size, FUZZ_MAX_PIXELS, &info, err);
    if (ret != BPG_OK) {
        check_message(err);
        return 0;
    }
    if (info.width == 0 || info.height == 0 ||
        (uint64_t)info.width * info.height > FUZZ_MAX_PIXELS ||
        info.hevc_data_offset >= info.hevc_data_end || info.hevc_data_end > size)
        abort(); /* the parser let an inconsistent header through */

    /* vary the output layout with the input: native, RGB or RGBA */
    switch (size % 3) {
    case 0: channels = bpg_native_channels(&info); break;
    case 1: channels = 3; break;
    default: channels = 4; break;
    }
    n = (size_t)info.width * info.height * (size_t)channels;
    dst = (uint8_t *)malloc(n);
    if (!dst)
        return 0;
    memset(err, 0, sizeof(err));
    ret = bpg_decode(data, size, channels, dst, n, FUZZ_MAX_PIXELS, NULL, err);
    if (ret != BPG_OK)
        check_message(err);
    free(dst);
    return 0;
}
