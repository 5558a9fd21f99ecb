/*
 * tfcomp BPG codec: a small C API over the system libx265 (encoder) and
 * libde265 (decoder) that reads and writes BPG 0.9.x still images exactly the
 * way the reference tools (bpgenc/bpgdec, libbpg) do.  See
 * docs/bpg-format.md (shared docs) for the format and the procedure.
 *
 * No TensorFlow in here.  Every function is thread-safe: no global mutable
 * state except a lock held while an x265 encoder is opened (x265 sets up its
 * global primitive tables lazily and not atomically) and a once-only libde265
 * initialisation.  Nothing is ever printed and nothing aborts: errors are
 * returned as a negative BPG_E_* code plus a message in `err` (at least
 * BPG_ERR_SIZE bytes, may be NULL).
 *
 * Limits (both directions): each side 1..BPG_MAX_SIDE (65535) and
 * width*height <= BPG_MAX_PIXELS (2^28 = 16384*16384, the same bound as
 * tfcomp.imageio.MAX_PIXELS).  A decoder caller may pass a lower pixel bound.
 */
#ifndef TFCOMP_BPG_H
#define TFCOMP_BPG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BPG_ERR_SIZE 256
#define BPG_MAX_SIDE 65535u
#define BPG_MAX_PIXELS (1u << 28)

/* Return codes (0 = success). */
enum {
    BPG_OK = 0,
    BPG_E_ARG = -1,         /* invalid argument from the caller (image, parameter) */
    BPG_E_FORMAT = -2,      /* corrupted, truncated or forged file */
    BPG_E_UNSUPPORTED = -3, /* well-formed but uses a feature this codec lacks */
    BPG_E_LIMIT = -4,       /* larger than BPG_MAX_SIDE / the pixel limit */
    BPG_E_NOMEM = -5,       /* out of memory */
    BPG_E_CODEC = -6        /* x265 or libde265 failed */
};

/* pixel_format values of the file header. */
enum {
    BPG_PF_GRAY = 0,
    BPG_PF_420 = 1,        /* 4:2:0, JPEG siting (chroma at 0.5, 0.5) */
    BPG_PF_422 = 2,        /* 4:2:2, JPEG siting */
    BPG_PF_444 = 3,
    BPG_PF_420_MPEG2 = 4,  /* 4:2:0, MPEG2 siting (chroma at 0, 0.5) */
    BPG_PF_422_MPEG2 = 5   /* 4:2:2, MPEG2 siting */
};

/* color_space values of the file header. */
enum {
    BPG_CS_YCBCR = 0,   /* BT.601 (JPEG matrix) */
    BPG_CS_RGB = 1,     /* G in Y, B in Cb, R in Cr */
    BPG_CS_YCGCO = 2,
    BPG_CS_BT709 = 3,
    BPG_CS_BT2020 = 4
};

/* ------------------------------------------------------------------ encoder */

typedef struct {
    int qp;            /* 0..51 (bpgenc -q); ignored when lossless */
    int alpha_qp;      /* 0..51 for the alpha plane, -1 = same as qp */
    int chroma;        /* 420 (default), 422 or 444; RGB colour space is always 444 */
    int mpeg2_siting;  /* 0: JPEG chroma siting (pixel_format 1/2, default),
                          1: MPEG2 siting (pixel_format 4/5, bpgenc -f 420_video) */
    int level;         /* 1..9 (bpgenc -m: x265 preset superfast..placebo), default 8 */
    int lossless;      /* bpgenc -lossless: forces RGB colour space, 4:4:4, 8 bits */
    int bit_depth;     /* 8 (default), 10 or 12 */
    int color_space;   /* BPG_CS_*, default YCbCr; grayscale input always uses YCbCr */
    int limited_range; /* 0 (default) full range, 1 limited (video) range */
    int hash;          /* 1: add the MD5 picture-hash SEI (bpgenc -hash) */
} bpg_encode_params;

/* Fills `p` with the bpgenc defaults (qp 28 is bpgenc's; tfcomp passes its own). */
void bpg_encode_params_init(bpg_encode_params *p);

/*
 * Encodes an 8-bit image: `channels` 1 (gray), 2 (gray + alpha), 3 (RGB) or
 * 4 (RGBA), interleaved, rows `row_stride` bytes apart.  An alpha channel is
 * coded as a BPG alpha plane (not premultiplied).  On success *out is a
 * malloc'ed complete .bpg file (release with bpg_free) of *out_len bytes.
 */
int bpg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
               size_t row_stride, const bpg_encode_params *params,
               uint8_t **out, size_t *out_len, char *err);

void bpg_free(void *ptr);

/* ------------------------------------------------------------------ header */

/* The compact SPS replacement (hevc_header) of a BPG file. */
typedef struct {
    int log2_min_cb_size;               /* 3..6 */
    int log2_diff_max_min_cb_size;
    int log2_min_tb_size;               /* 2..5 */
    int log2_diff_max_min_tb_size;
    int max_transform_hierarchy_depth;  /* intra (= inter) */
    int sao;
    int pcm;
    int pcm_bit_depth_luma;             /* if pcm */
    int pcm_bit_depth_chroma;
    int log2_min_pcm_cb_size;
    int log2_diff_max_min_pcm_cb_size;
    int pcm_loop_filter_disabled;
    int strong_intra_smoothing;
    int sps_extension;
    int sps_range_extension;
    int range_extension_flags;          /* 9 bits, transform_skip_rotation first (MSB) */
} bpg_hevc_header;

typedef struct {
    uint32_t width, height;
    int pixel_format;         /* BPG_PF_* as stored */
    int chroma_format_idc;    /* 0 gray, 1 4:2:0, 2 4:2:2, 3 4:4:4 */
    int mpeg2_siting;         /* 1 for pixel_format 4 and 5 */
    int bit_depth;            /* 8..14 */
    int color_space;          /* BPG_CS_* */
    int alpha1_flag, alpha2_flag;
    int has_alpha;            /* an alpha plane is present (alpha1 = 1) */
    int premultiplied_alpha;  /* alpha1 = alpha2 = 1 */
    int has_w_plane;          /* alpha1 = 0, alpha2 = 1: CMYK "W" plane */
    int limited_range;
    int has_animation;
    int has_extension;
    uint32_t picture_data_length;   /* as stored; 0 = up to the end of the file */
    uint32_t extension_data_length;
    int has_anim_control;
    uint32_t loop_count, frame_period_num, frame_period_den;
    bpg_hevc_header alpha_header;   /* valid if has_alpha || has_w_plane */
    bpg_hevc_header colour_header;
    size_t hevc_header_offset;      /* first hevc_header() (alpha if present) */
    size_t hevc_data_offset;        /* first byte of hevc_data */
    size_t hevc_data_end;           /* one past its last byte */
    uint32_t coded_width, coded_height; /* sizes rounded up to the minimum CB size */
} bpg_info;

/*
 * Parses and validates the header, the extensions and the hevc_header(s) of
 * a BPG file, with every field and length bounds-checked.  `max_pixels` is
 * the pixel bound to enforce (0 = BPG_MAX_PIXELS; larger values are clamped).
 */
int bpg_parse_header(const uint8_t *data, size_t len, uint32_t max_pixels,
                     bpg_info *info, char *err);

/* Channels of the natural output: 1 (gray) or 3 (colour), +1 with an alpha plane. */
int bpg_native_channels(const bpg_info *info);

/* ------------------------------------------------------------------ decoder */

/*
 * Decodes the (first) picture of a BPG file into `dst`, height x width x
 * `channels` uint8, rows packed (dst_size >= width*height*channels):
 *   3: RGB (gray replicated, alpha dropped, a W plane multiplied in);
 *   4: RGBA (alpha 255 when the file has none; premultiplied alpha undone);
 *   1 and 2: gray and gray + alpha, for grayscale files only.
 * The conversion to 8-bit RGB (chroma upsampling, colour matrix, ranges,
 * 10/12-bit input) is bpgdec's.  `info` may be NULL; otherwise it receives
 * the header.  `max_pixels` as for bpg_parse_header.
 */
int bpg_decode(const uint8_t *data, size_t len, int channels, uint8_t *dst,
               size_t dst_size, uint32_t max_pixels, bpg_info *info, char *err);

/* Message for a return code (static string). */
const char *bpg_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* TFCOMP_BPG_H */
