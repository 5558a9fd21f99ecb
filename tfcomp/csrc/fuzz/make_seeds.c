/*
 * Writes a seed corpus of small valid BPG files (made with tfcomp's encoder) into
 * the directory given as argv[1]: every pixel format, alpha, lossless, 10-bit,
 * limited range, the colour spaces, the MD5 SEI, an extension block and an
 * animation-control header.  Used by run_fuzz.sh.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpg.h"

static int write_file(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s.bpg", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) {
        fprintf(stderr, "cannot write %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

/* Inserts an extension block (tag, payload) after picture_data_length. */
static uint8_t *with_extension(const uint8_t *in, size_t len, int animation, size_t *out_len)
{
    /* header: 6 bytes, then 3 ue7 (width, height, data length) */
    size_t idx = 6;
    int k;
    uint8_t ext[32];
    size_t elen = 0;
    uint8_t *out;
    for (k = 0; k < 3; k++) {
        while (in[idx] & 0x80)
            idx++;
        idx++;
    }
    if (animation) { /* tag 5: loop_count 0, frame period 1/25 */
        ext[elen++] = 5;
        ext[elen++] = 3;
        ext[elen++] = 0;
        ext[elen++] = 1;
        ext[elen++] = 25;
    } else { /* tag 1 (EXIF) with 6 dummy bytes, tag 77 (unknown) empty */
        ext[elen++] = 1;
        ext[elen++] = 6;
        memcpy(ext + elen, "Exif\0\0", 6);
        elen += 6;
        ext[elen++] = 77;
        ext[elen++] = 0;
    }
    out = malloc(len + elen + 1);
    memcpy(out, in, idx);
    out[5] |= 0x08 | (animation ? 1 : 0);
    out[idx] = (uint8_t)elen;
    memcpy(out + idx + 1, ext, elen);
    memcpy(out + idx + 1 + elen, in + idx, len - idx);
    *out_len = len + elen + 1;
    return out;
}

int main(int argc, char **argv)
{
    struct {
        const char *name;
        int w, h, channels, chroma, mpeg2, lossless, bit_depth, color_space, limited, hash;
    } cases[] = {
        {"gray_16x16", 16, 16, 1, 420, 0, 0, 8, 0, 0, 0},
        {"rgb420_37x21", 37, 21, 3, 420, 0, 0, 8, 0, 0, 0},
        {"rgb420_mpeg2_24x24", 24, 24, 3, 420, 1, 0, 8, 0, 0, 0},
        {"rgb422_20x18", 20, 18, 3, 422, 0, 0, 8, 0, 0, 0},
        {"rgb422_mpeg2_20x18", 20, 18, 3, 422, 1, 0, 8, 0, 0, 0},
        {"rgb444_17x9", 17, 9, 3, 444, 0, 0, 8, 0, 0, 0},
        {"rgba420_16x16", 16, 16, 4, 420, 0, 0, 8, 0, 0, 0},
        {"graya_9x7", 9, 7, 2, 420, 0, 0, 8, 0, 0, 0},
        {"lossless_8x8", 8, 8, 3, 444, 0, 1, 8, 0, 0, 0},
        {"rgb420_10bit_16x16", 16, 16, 3, 420, 0, 0, 10, 0, 0, 0},
        {"gray_12bit_16x8", 16, 8, 1, 420, 0, 0, 12, 0, 0, 0},
        {"limited_ycgco_16x16", 16, 16, 3, 420, 0, 0, 8, 2, 1, 0},
        {"bt709_444_8x16", 8, 16, 3, 444, 0, 0, 8, 3, 0, 0},
        {"bt2020_hash_16x16", 16, 16, 3, 420, 0, 0, 8, 4, 0, 1},
        {"rgb_cs_64x64", 64, 64, 3, 444, 0, 0, 8, 1, 0, 0},
    };
    size_t i;
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int w = cases[i].w, h = cases[i].h, c = cases[i].channels, x, y, k;
        uint8_t *img = malloc((size_t)w * h * c), *out = NULL;
        size_t out_len = 0;
        char err[BPG_ERR_SIZE];
        bpg_encode_params p;
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++)
                for (k = 0; k < c; k++)
                    img[((size_t)y * w + x) * c + k] =
                        (uint8_t)(128 + 60 * sin(0.4 * x + k) + 50 * cos(0.3 * y - k) +
                                  ((x * 7 + y * 13 + k * 5) % 17));
        bpg_encode_params_init(&p);
        p.qp = 32;
        p.level = 1; /* fast: the seeds only need to be valid */
        p.chroma = cases[i].chroma;
        p.mpeg2_siting = cases[i].mpeg2;
        p.lossless = cases[i].lossless;
        p.bit_depth = cases[i].bit_depth;
        p.color_space = cases[i].color_space;
        p.limited_range = cases[i].limited;
        p.hash = cases[i].hash;
        if (bpg_encode(img, (uint32_t)w, (uint32_t)h, c, (size_t)w * c, &p, &out, &out_len,
                       err) != BPG_OK) {
            fprintf(stderr, "%s: %s\n", cases[i].name, err);
            return 1;
        }
        if (write_file(argv[1], cases[i].name, out, out_len))
            return 1;
        if (i == 1 || i == 6) {
            size_t elen;
            uint8_t *e = with_extension(out, out_len, i == 6, &elen);
            write_file(argv[1], i == 1 ? "rgb420_exif_ext" : "rgba420_animation_ext", e, elen);
            free(e);
        }
        bpg_free(out);
        free(img);
    }
    return 0;
}
