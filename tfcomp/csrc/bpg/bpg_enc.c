/*
 * BPG encoder on the plain libx265 C API, following bpgenc.c / x265_glue.c
 * step by step (docs/bpg-format.md section 2): fixed-point RGB->YCbCr,
 * bpgenc's chroma decimation filters, padding to a multiple of 8, the same
 * x265 parameters, and the rewriting of the VPS/SPS into the compact
 * hevc_header.  The same x265 build gives byte-identical files.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <x265.h>

#include "bpg_common.h"

typedef uint16_t PIXEL;

/* x265 initialises its global primitive tables inside encoder_open without
   synchronisation; opening encoders one at a time makes that safe. */
static pthread_mutex_t g_x265_open_lock = PTHREAD_MUTEX_INITIALIZER;

#define CB_SIZE 8 /* bpgenc's hard-coded padding (x265's minimum CU must match) */

void bpg_encode_params_init(bpg_encode_params *p)
{
    memset(p, 0, sizeof(*p));
    p->qp = 28;
    p->alpha_qp = -1;
    p->chroma = 420;
    p->level = 8;
    p->bit_depth = 8;
    p->color_space = BPG_CS_YCBCR;
}

static inline int clamp_pix(int a, int pixel_max)
{
    return a < 0 ? 0 : (a > pixel_max ? pixel_max : a);
}

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* --------------------------------------------------- colour conversion */

typedef struct {
    int c_shift, c_rnd, c_0_25, c_0_5, c_one;
    int rgb_to_ycc[9];
    int y_one, y_offset;
    int bit_depth, pixel_max, c_center;
} enc_cvt;

/* bpgenc convert_init with 8-bit input. */
static void convert_init(enc_cvt *s, int out_bit_depth, int color_space, int limited_range)
{
    const int in_bit_depth = 8;
    double k_r = 0.299, k_b = 0.114, mult, mult_y, mult_c, m[9];
    int in_pixel_max = (1 << in_bit_depth) - 1;
    int out_pixel_max = (1 << out_bit_depth) - 1;
    int c_shift = 31 - out_bit_depth, i;

    memset(s, 0, sizeof(*s));
    mult = (double)out_pixel_max * (1 << c_shift) / (double)in_pixel_max;
    if (limited_range) {
        mult_y = (double)(219 << (out_bit_depth - 8)) * (1 << c_shift) / (double)in_pixel_max;
        mult_c = (double)(224 << (out_bit_depth - 8)) * (1 << c_shift) / (double)in_pixel_max;
    } else {
        mult_y = mult;
        mult_c = mult;
    }
    switch (color_space) {
    case BPG_CS_BT709:
        k_r = 0.2126;
        k_b = 0.0722;
        goto convert_ycc;
    case BPG_CS_BT2020:
        k_r = 0.2627;
        k_b = 0.0593;
        goto convert_ycc;
    case BPG_CS_YCBCR:
    convert_ycc:
        m[0] = k_r;
        m[1] = 1 - k_r - k_b;
        m[2] = k_b;
        m[3] = -0.5 * k_r / (1 - k_b);
        m[4] = -0.5 * (1 - k_r - k_b) / (1 - k_b);
        m[5] = 0.5;
        m[6] = 0.5;
        m[7] = -0.5 * (1 - k_r - k_b) / (1 - k_r);
        m[8] = -0.5 * k_b / (1 - k_r);
        for (i = 0; i < 3; i++)
            s->rgb_to_ycc[i] = (int)lrint(m[i] * mult_y);
        for (i = 3; i < 9; i++)
            s->rgb_to_ycc[i] = (int)lrint(m[i] * mult_c);
        break;
    case BPG_CS_YCGCO:
        s->c_0_25 = (int)lrint(0.25 * mult_y);
        s->c_0_5 = (int)lrint(0.5 * mult_y);
        break;
    default:
        break;
    }
    s->c_one = (int)lrint(mult);
    s->c_shift = c_shift;
    s->c_rnd = 1 << (c_shift - 1);
    if (limited_range) {
        s->y_offset = s->c_rnd + (16 << (c_shift + out_bit_depth - 8));
        s->y_one = (int)lrint(mult_y);
    } else {
        s->y_offset = s->c_rnd;
        s->y_one = s->c_one;
    }
    s->bit_depth = out_bit_depth;
    s->c_center = 1 << (out_bit_depth - 1);
    s->pixel_max = out_pixel_max;
}

/* The sums below fit in 32 bits (checked for 8..12 bits); int64 keeps the
   arithmetic well defined anyway.  >> is an arithmetic shift, as in bpgenc. */
static void rgb24_to_ycc(const enc_cvt *s, PIXEL *y, PIXEL *cb, PIXEL *cr,
                         const uint8_t *src, int n, int incr)
{
    const int *c = s->rgb_to_ycc;
    int i;
    for (i = 0; i < n; i++, src += incr) {
        int64_t r = src[0], g = src[1], b = src[2];
        y[i] = (PIXEL)clamp_pix((int)((c[0] * r + c[1] * g + c[2] * b + s->y_offset) >> s->c_shift),
                                s->pixel_max);
        cb[i] = (PIXEL)clamp_pix((int)(((c[3] * r + c[4] * g + c[5] * b + s->c_rnd) >> s->c_shift) +
                                       s->c_center), s->pixel_max);
        cr[i] = (PIXEL)clamp_pix((int)(((c[6] * r + c[7] * g + c[8] * b + s->c_rnd) >> s->c_shift) +
                                       s->c_center), s->pixel_max);
    }
}

static void rgb24_to_rgb(const enc_cvt *s, PIXEL *y, PIXEL *cb, PIXEL *cr,
                         const uint8_t *src, int n, int incr)
{
    int64_t c = s->y_one;
    int i;
    for (i = 0; i < n; i++, src += incr) {
        y[i] = (PIXEL)((c * src[1] + s->y_offset) >> s->c_shift);
        cb[i] = (PIXEL)((c * src[2] + s->y_offset) >> s->c_shift);
        cr[i] = (PIXEL)((c * src[0] + s->y_offset) >> s->c_shift);
    }
}

static void rgb24_to_ycgco(const enc_cvt *s, PIXEL *y, PIXEL *cb, PIXEL *cr,
                           const uint8_t *src, int n, int incr)
{
    int i;
    for (i = 0; i < n; i++, src += incr) {
        int64_t r = src[0], g = src[1], b = src[2];
        int64_t t1 = (int64_t)s->c_0_5 * g, t2 = (int64_t)s->c_0_25 * (r + b);
        y[i] = (PIXEL)clamp_pix((int)((t1 + t2 + s->y_offset) >> s->c_shift), s->pixel_max);
        cb[i] = (PIXEL)clamp_pix((int)(((t1 - t2 + s->c_rnd) >> s->c_shift) + s->c_center),
                                 s->pixel_max);
        cr[i] = (PIXEL)clamp_pix((int)((((int64_t)s->c_0_5 * (r - b) + s->c_rnd) >> s->c_shift) +
                                       s->c_center), s->pixel_max);
    }
}

/* luma8_to_gray (gray images: limited range applies) */
static void luma8_to_gray(const enc_cvt *s, PIXEL *y, const uint8_t *src, int n, int incr)
{
    int i;
    for (i = 0; i < n; i++, src += incr)
        y[i] = (PIXEL)(((int64_t)s->y_one * src[0] + s->y_offset) >> s->c_shift);
}

/* gray8_to_gray (alpha: always full range) */
static void gray8_to_gray(const enc_cvt *s, PIXEL *y, const uint8_t *src, int n, int incr)
{
    int i;
    for (i = 0; i < n; i++, src += incr)
        y[i] = (PIXEL)(((int64_t)s->c_one * src[0] + s->c_rnd) >> s->c_shift);
}

/* ---------------------------------------------------------- decimation */
/* bpgenc pads rows with replicated edge samples; reading through a clamped
   index is the same thing. */

/* phase 1 (JPEG siting, half-phase): 10 taps over s[2i-4 .. 2i+5] */
static inline int dec_p1(const PIXEL *s, int n, int c)
{
#define S(k) ((int)s[clampi(c + (k), 0, n - 1)])
    return (S(-4) + S(5)) * 2 + (S(-3) + S(4)) * -4 + (S(-2) + S(3)) * -8 +
           (S(-1) + S(2)) * 17 + (S(0) + S(1)) * 57;
}

/* phase 0 (MPEG2 siting, co-sited): 15 taps over s[2i-7 .. 2i+7] */
static inline int dec_p0(const PIXEL *s, int n, int c)
{
    return (S(-7) + S(7)) * -1 + (S(-5) + S(5)) * 4 + (S(-3) + S(3)) * -11 +
           (S(-1) + S(1)) * 40 + S(0) * 64;
#undef S
}

/* 4:2:2: decimate2_h, directly to samples */
static void decimate_422(PIXEL *dst, const PIXEL *src, int n, int bit_depth, int phase)
{
    int i, n2 = (n + 1) / 2, pixel_max = (1 << bit_depth) - 1;
    for (i = 0; i < n2; i++) {
        int sum = phase ? dec_p1(src, n, 2 * i) : dec_p0(src, n, 2 * i);
        dst[i] = (PIXEL)clamp_pix((sum + 64) >> 7, pixel_max);
    }
}

/* 4:2:0: decimate2_hv: horizontal with 16-bit precision, then the 10-tap
   half-phase filter vertically.  src is w x h (stride sstride), dst is
   ceil(w/2) x ceil(h/2) (stride dstride).  Returns -1 on allocation failure. */
static int decimate_420(PIXEL *dst, int dstride, const PIXEL *src, int sstride, int w, int h,
                        int bit_depth, int phase)
{
    int w2 = (w + 1) / 2, h2 = (h + 1) / 2, x, y, j;
    int hshift = bit_depth - 7, hrnd = 1 << (hshift - 1);
    int vshift = 21 - bit_depth, voff = 1 << (vshift - 1), pixel_max = (1 << bit_depth) - 1;
    int32_t *tmp = (int32_t *)malloc((size_t)w2 * h * sizeof(int32_t));
    if (!tmp)
        return -1;
    for (y = 0; y < h; y++) {
        const PIXEL *row = src + (size_t)y * sstride;
        int32_t *t = tmp + (size_t)y * w2;
        for (x = 0; x < w2; x++) {
            int sum = phase ? dec_p1(row, w, 2 * x) : dec_p0(row, w, 2 * x);
            t[x] = (sum + hrnd) >> hshift; /* int16_t in bpgenc; always in range */
        }
    }
    for (j = 0; j < h2; j++) {
        const int32_t *r[10];
        int k;
        for (k = 0; k < 10; k++)
            r[k] = tmp + (size_t)clampi(2 * j - 4 + k, 0, h - 1) * w2;
        for (x = 0; x < w2; x++) {
            int sum = (r[0][x] + r[9][x]) * 2 + (r[1][x] + r[8][x]) * -4 +
                      (r[2][x] + r[7][x]) * -8 + (r[3][x] + r[6][x]) * 17 +
                      (r[4][x] + r[5][x]) * 57;
            dst[(size_t)j * dstride + x] = (PIXEL)clamp_pix((sum + voff) >> vshift, pixel_max);
        }
    }
    free(tmp);
    return 0;
}

/* image_pad: replicate the last real column and row up to the padded size. */
static void pad_plane(PIXEL *p, int stride, int cw, int ch, int cw1, int ch1)
{
    int x, y;
    for (y = 0; y < ch; y++) {
        PIXEL *row = p + (size_t)y * stride, v = row[cw - 1];
        for (x = cw; x < cw1; x++)
            row[x] = v;
    }
    for (y = ch; y < ch1; y++)
        memcpy(p + (size_t)y * stride, p + (size_t)(ch - 1) * stride, (size_t)cw1 * sizeof(PIXEL));
}

/* ---------------------------------------------------------------- x265 */

typedef struct {
    int fmt;          /* 0 gray, 1 420, 2 422, 3 444 */
    int w, h;         /* padded size */
    int ctu_size;     /* x265 maxCUSize: 64 (bpgenc), or 32/16 for small pictures */
    int min_cb_size;  /* x265 minCUSize: 8 (bpgenc), 16 for pictures with a side <= 8 */
    PIXEL *plane[3];  /* padded planes, stride = plane width */
    int pw[3], ph[3];
} enc_image;

static int x265_encode_image(const enc_image *img, int bit_depth, int qp, int lossless,
                             int level, int hash, bpg_dynbuf *out, char *err)
{
    static const int csp[4] = {X265_CSP_I400, X265_CSP_I420, X265_CSP_I422, X265_CSP_I444};
    const x265_api *api;
    x265_param *p = NULL;
    x265_encoder *enc = NULL;
    x265_picture *pic = NULL;
    x265_nal *nals;
    uint32_t nal_count, i;
    uint8_t *planes8[3] = {NULL, NULL, NULL};
    int c, c_count = img->fmt == 0 ? 1 : 3, ret = BPG_OK, r;

    pthread_mutex_lock(&g_x265_open_lock);
    api = x265_api_get(bit_depth);
    if (!api) {
        pthread_mutex_unlock(&g_x265_open_lock);
        return bpg_set_err(err, BPG_E_UNSUPPORTED, "libx265 has no %d-bit encoder", bit_depth);
    }
    p = api->param_alloc();
    if (!p) {
        pthread_mutex_unlock(&g_x265_open_lock);
        return bpg_set_err(err, BPG_E_NOMEM, "x265: param_alloc failed");
    }
    if (api->param_default_preset(p, x265_preset_names[level], "ssim") < 0) {
        api->param_free(p);
        pthread_mutex_unlock(&g_x265_open_lock);
        return bpg_set_err(err, BPG_E_CODEC, "x265: unknown preset %s", x265_preset_names[level]);
    }
    p->bRepeatHeaders = 1;
    p->decodedPictureHashSEI = hash ? 1 : 0;
    p->sourceWidth = img->w;
    p->sourceHeight = img->h;
    p->internalCsp = csp[img->fmt];
    p->keyframeMax = 1; /* still image: one I frame */
    p->totalFrames = 1;
    p->bEnableRectInter = 1;
    p->bEnableAMP = 1; /* the compact header implies amp_enabled_flag = 1 */
    p->internalBitDepth = bit_depth;
    p->bEmitInfoSEI = 0;
    p->logLevel = X265_LOG_NONE;
    p->fpsNum = 25;
    p->fpsDenom = 1;
    p->rc.rateControlMode = X265_RC_CQP;
    p->rc.qp = qp;
    p->bLossless = lossless;
    if (img->ctu_size != 64) {
        /* Small pictures (see bpg_encode): x265 3.x requires at least one CTU. */
        p->maxCUSize = (uint32_t)img->ctu_size;
        p->minCUSize = (uint32_t)img->min_cb_size;
        if (p->maxTUSize > (uint32_t)img->ctu_size)
            p->maxTUSize = (uint32_t)img->ctu_size;
        if (p->rc.qgSize > (uint32_t)img->ctu_size)
            p->rc.qgSize = (uint32_t)img->ctu_size;
    }
    enc = api->encoder_open(p);
    if (enc) {
        pic = api->picture_alloc();
        if (pic) {
            api->picture_init(p, pic);
            pic->colorSpace = p->internalCsp;
        }
    }
    api->param_free(p);
    pthread_mutex_unlock(&g_x265_open_lock);
    if (!enc)
        return bpg_set_err(err, BPG_E_CODEC, "x265: encoder_open failed (%dx%d, %d-bit)",
                           img->w, img->h, bit_depth);
    if (!pic) {
        api->encoder_close(enc);
        return bpg_set_err(err, BPG_E_NOMEM, "x265: picture_alloc failed");
    }

    for (c = 0; c < c_count; c++) {
        size_t n = (size_t)img->pw[c] * img->ph[c], k;
        if (bit_depth == 8) {
            planes8[c] = (uint8_t *)malloc(n);
            if (!planes8[c]) {
                ret = bpg_set_err(err, BPG_E_NOMEM, "out of memory (8-bit planes)");
                goto done;
            }
            for (k = 0; k < n; k++)
                planes8[c][k] = (uint8_t)img->plane[c][k];
            pic->planes[c] = planes8[c];
            pic->stride[c] = img->pw[c];
        } else {
            pic->planes[c] = img->plane[c];
            pic->stride[c] = img->pw[c] * (int)sizeof(PIXEL);
        }
    }
    pic->bitDepth = bit_depth;

    r = api->encoder_encode(enc, &nals, &nal_count, pic, NULL);
    if (r < 0) {
        ret = bpg_set_err(err, BPG_E_CODEC, "x265: encoder_encode failed");
        goto done;
    }
    for (;;) {
        if (r > 0) {
            for (i = 0; i < nal_count; i++)
                bpg_dynbuf_push(out, nals[i].payload, nals[i].sizeBytes);
        }
        r = api->encoder_encode(enc, &nals, &nal_count, NULL, NULL);
        if (r <= 0)
            break;
    }
    if (r < 0) {
        ret = bpg_set_err(err, BPG_E_CODEC, "x265: encoder_encode (flush) failed");
        goto done;
    }
    if (out->failed) {
        ret = bpg_set_err(err, BPG_E_NOMEM, "out of memory (x265 output)");
        goto done;
    }
    if (out->len == 0)
        ret = bpg_set_err(err, BPG_E_CODEC, "x265 produced no output");
done:
    api->encoder_close(enc);
    api->picture_free(pic);
    for (c = 0; c < 3; c++)
        free(planes8[c]);
    return ret;
}

/* ------------------------------------------------ build_modified_sps */

/* Copies the NAL at buf (with its start code, ending at end) minus the start
   code into a malloc'ed buffer, removing emulation prevention bytes. */
static uint8_t *extract_nal(const uint8_t *buf, size_t end, size_t *out_len)
{
    size_t start = buf[2] == 1 ? 3 : 4, idx = start, n = 0;
    uint8_t *nal = (uint8_t *)malloc(end - start + 1);
    if (!nal)
        return NULL;
    while (idx < end) {
        if (idx + 2 < end && buf[idx] == 0 && buf[idx + 1] == 0 && buf[idx + 2] == 3) {
            nal[n++] = 0;
            nal[n++] = 0;
            idx += 3;
        } else {
            nal[n++] = buf[idx++];
        }
    }
    *out_len = n;
    return nal;
}

#define SPS_FAIL(...) do { ret = bpg_set_err(err, BPG_E_CODEC, __VA_ARGS__); goto done; } while (0)

/* Parses x265's VPS + SPS at the start of buf, writes ue7(len) + compact
   hevc_header into hdr (>= 64 bytes), and returns in *rest the offset of the
   start code of the NAL that follows the SPS. */
static int build_modified_sps(const uint8_t *buf, size_t len, uint8_t *hdr, size_t *hdr_len,
                              size_t *rest, char *err)
{
    long e1, e2;
    size_t nal_len, sps_off;
    uint8_t *nal = NULL, bits[48];
    bpg_bitreader br_s, *br = &br_s;
    bpg_hevc_header h;
    int ret = BPG_OK, i, nbytes, nut;
    uint32_t v;

    e1 = bpg_find_nal_end(buf, len, 1);
    if (e1 < 0)
        return bpg_set_err(err, BPG_E_CODEC, "x265 output does not start with a NAL unit");
    nut = (buf[buf[2] == 1 ? 3 : 4] >> 1) & 0x3f;
    if (nut != 32)
        return bpg_set_err(err, BPG_E_CODEC, "x265 output: expecting a VPS NAL, got type %d", nut);
    sps_off = (size_t)e1;
    e2 = bpg_find_nal_end(buf + sps_off, len - sps_off, 1);
    if (e2 < 0)
        return bpg_set_err(err, BPG_E_CODEC, "x265 output: no NAL unit after the VPS");
    nal = extract_nal(buf + sps_off, (size_t)e2, &nal_len);
    if (!nal)
        return bpg_set_err(err, BPG_E_NOMEM, "out of memory (SPS)");
    if (nal_len < 2 || ((nal[0] >> 1) & 0x3f) != 33)
        SPS_FAIL("x265 output: expecting an SPS NAL after the VPS");

    memset(&h, 0, sizeof(h));
    bpg_br_init(br, nal, nal_len);
    bpg_br_skip(br, 16); /* NAL header */
    if (bpg_br_bits(br, 4) != 0)
        SPS_FAIL("x265 SPS: VPS id 0 expected");
    if (bpg_br_bits(br, 3) != 0)
        SPS_FAIL("x265 SPS: max_sub_layers_minus1 == 0 expected");
    bpg_br_skip(br, 1);      /* temporal_id_nesting_flag */
    bpg_br_skip(br, 2 + 1);  /* profile_space, tier_flag */
    bpg_br_skip(br, 5 + 32); /* profile_idc, compatibility flags */
    bpg_br_skip(br, 4 + 44 + 8);
    if (bpg_br_ue(br) != 0)
        SPS_FAIL("x265 SPS: SPS id 0 expected");
    if (bpg_br_ue(br) == 3) /* chroma_format_idc */
        bpg_br_skip(br, 1); /* separate_colour_plane_flag */
    bpg_br_ue(br);          /* width */
    bpg_br_ue(br);          /* height */
    if (bpg_br_bits(br, 1)) { /* conformance window */
        for (i = 0; i < 4; i++)
            bpg_br_ue(br);
    }
    bpg_br_ue(br); /* bit_depth_luma_minus8 */
    bpg_br_ue(br); /* bit_depth_chroma_minus8 */
    if (bpg_br_ue(br) + 4 != 8)
        SPS_FAIL("x265 SPS: log2_max_pic_order_cnt_lsb must be 8");
    bpg_br_skip(br, 1); /* sub_layer_ordering_info_present_flag */
    bpg_br_ue(br);
    bpg_br_ue(br);
    bpg_br_ue(br);
    h.log2_min_cb_size = (int)bpg_br_ue(br) + 3;
    h.log2_diff_max_min_cb_size = (int)bpg_br_ue(br);
    h.log2_min_tb_size = (int)bpg_br_ue(br) + 2;
    h.log2_diff_max_min_tb_size = (int)bpg_br_ue(br);
    v = bpg_br_ue(br); /* inter */
    h.max_transform_hierarchy_depth = (int)bpg_br_ue(br);
    if (v != (uint32_t)h.max_transform_hierarchy_depth)
        SPS_FAIL("x265 SPS: max_transform_hierarchy_depth_inter (%u) != intra (%d)", v,
                 h.max_transform_hierarchy_depth);
    if (bpg_br_bits(br, 1))
        SPS_FAIL("x265 SPS: scaling_list_enabled_flag must be 0");
    if (!bpg_br_bits(br, 1))
        SPS_FAIL("x265 SPS: amp_enabled_flag must be set");
    h.sao = (int)bpg_br_bits(br, 1);
    h.pcm = (int)bpg_br_bits(br, 1);
    if (h.pcm) {
        h.pcm_bit_depth_luma = (int)bpg_br_bits(br, 4) + 1;
        h.pcm_bit_depth_chroma = (int)bpg_br_bits(br, 4) + 1;
        h.log2_min_pcm_cb_size = (int)bpg_br_ue(br) + 3;
        h.log2_diff_max_min_pcm_cb_size = (int)bpg_br_ue(br);
        h.pcm_loop_filter_disabled = (int)bpg_br_bits(br, 1);
    }
    if (bpg_br_ue(br) != 0)
        SPS_FAIL("x265 SPS: num_short_term_ref_pic_sets must be 0");
    if (bpg_br_bits(br, 1))
        SPS_FAIL("x265 SPS: long_term_ref_pics_present_flag must be 0");
    if (!bpg_br_bits(br, 1))
        SPS_FAIL("x265 SPS: sps_temporal_mvp_enabled_flag must be set");
    h.strong_intra_smoothing = (int)bpg_br_bits(br, 1);
    if (bpg_br_bits(br, 1)) { /* VUI */
        if (bpg_br_bits(br, 1)) { /* aspect_ratio_info_present_flag */
            if (bpg_br_bits(br, 8) == 255)
                bpg_br_skip(br, 32);
        }
        if (bpg_br_bits(br, 1)) /* overscan_info_present_flag */
            bpg_br_skip(br, 1);
        if (bpg_br_bits(br, 1))
            SPS_FAIL("x265 SPS: video_signal_type_present_flag must be 0");
        if (bpg_br_bits(br, 1)) { /* chroma_loc_info_present_flag */
            bpg_br_ue(br);
            bpg_br_ue(br);
        }
        bpg_br_skip(br, 3); /* neutral_chroma, field_seq, frame_field_info */
        if (bpg_br_bits(br, 1))
            SPS_FAIL("x265 SPS: default_display_window_flag must be 0");
        if (bpg_br_bits(br, 1)) { /* vui_timing_info_present_flag */
            bpg_br_skip(br, 64);
            if (bpg_br_bits(br, 1))
                bpg_br_ue(br);
            if (bpg_br_bits(br, 1))
                SPS_FAIL("x265 SPS: vui_hrd_parameters_present_flag must be 0");
        }
        if (bpg_br_bits(br, 1)) { /* bitstream_restriction_flag */
            bpg_br_skip(br, 3);
            for (i = 0; i < 5; i++)
                bpg_br_ue(br);
        }
    }
    h.sps_extension = (int)bpg_br_bits(br, 1);
    if (h.sps_extension) {
        h.sps_range_extension = (int)bpg_br_bits(br, 1);
        if (bpg_br_bits(br, 7) != 0)
            SPS_FAIL("x265 SPS: sps_extension_7bits must be 0");
        if (h.sps_range_extension) {
            h.range_extension_flags = (int)bpg_br_bits(br, 9);
            if (h.range_extension_flags & ((1 << 5) | (1 << 4) | (1 << 2) | 1))
                SPS_FAIL("x265 SPS: unsupported range extensions (0x%x)",
                         h.range_extension_flags);
        }
    }
    if (br->overread)
        SPS_FAIL("x265 SPS is truncated");

    nbytes = bpg_write_hevc_header_bits(&h, bits, sizeof(bits));
    if (nbytes < 0)
        SPS_FAIL("internal error: hevc_header too long");
    *hdr_len = (size_t)bpg_put_ue7(hdr, (uint32_t)nbytes);
    memcpy(hdr + *hdr_len, bits, (size_t)nbytes);
    *hdr_len += (size_t)nbytes;
    *rest = sps_off + (size_t)e2;
done:
    free(nal);
    return ret;
}

/* build_modified_hevc: headers, then the remaining NALs alternating alpha and
   colour, the alpha ones with nuh_layer_id = 1, the first without start code. */
static int build_modified_hevc(const bpg_dynbuf *cbuf, const bpg_dynbuf *abuf,
                               bpg_dynbuf *out, char *err)
{
    uint8_t hdr[80];
    size_t hdr_len, cidx, aidx = 0;
    int ret, is_alpha, first = 1;

    if (abuf) {
        ret = build_modified_sps(abuf->buf, abuf->len, hdr, &hdr_len, &aidx, err);
        if (ret)
            return ret;
        bpg_dynbuf_push(out, hdr, hdr_len);
    }
    ret = build_modified_sps(cbuf->buf, cbuf->len, hdr, &hdr_len, &cidx, err);
    if (ret)
        return ret;
    bpg_dynbuf_push(out, hdr, hdr_len);

    is_alpha = abuf != NULL;
    for (;;) {
        const uint8_t *nal;
        long nal_len;
        size_t start, skip;
        if (!is_alpha) {
            if (cidx >= cbuf->len) {
                if (abuf && aidx < abuf->len)
                    return bpg_set_err(err, BPG_E_CODEC, "x265: incorrect number of alpha NALs");
                break;
            }
            nal = cbuf->buf + cidx;
            nal_len = bpg_find_nal_end(nal, cbuf->len - cidx, 1);
            if (nal_len < 0)
                return bpg_set_err(err, BPG_E_CODEC, "x265 output: malformed NAL unit");
            cidx += (size_t)nal_len;
        } else {
            if (aidx >= abuf->len) {
                if (cidx < cbuf->len)
                    return bpg_set_err(err, BPG_E_CODEC, "x265: incorrect number of alpha NALs");
                break;
            }
            nal = abuf->buf + aidx;
            nal_len = bpg_find_nal_end(nal, abuf->len - aidx, 1);
            if (nal_len < 0)
                return bpg_set_err(err, BPG_E_CODEC, "x265 output: malformed NAL unit");
            aidx += (size_t)nal_len;
        }
        start = 3 + (nal[2] == 0);
        skip = first ? start : 0;
        if (bpg_dynbuf_push(out, nal + skip, (size_t)nal_len - skip) == 0 && is_alpha)
            out->buf[out->len - ((size_t)nal_len - skip) + (start - skip) + 1] |= 1 << 3;
        if (abuf)
            is_alpha ^= 1;
        first = 0;
    }
    if (out->failed)
        return bpg_set_err(err, BPG_E_NOMEM, "out of memory (HEVC data)");
    return BPG_OK;
}

/* ------------------------------------------------------------- encode */

int bpg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
               size_t row_stride, const bpg_encode_params *params, uint8_t **out,
               size_t *out_len, char *err)
{
    bpg_encode_params def;
    const bpg_encode_params *p = params;
    enc_cvt cvt;
    enc_image img, aimg;
    PIXEL *full_c[2] = {NULL, NULL};
    bpg_dynbuf cbuf, abuf, hevc, file;
    int gray, has_alpha, cs, bd, limited, fmt, w1, h1, w, h, y, c, ret = BPG_OK;
    int pixel_format, phase, qp_alpha, cb, ctu;
    uint8_t head[32];
    size_t hl;

    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!out || !out_len)
        return bpg_set_err(err, BPG_E_ARG, "bpg_encode: out and out_len are required");
    if (!p) {
        bpg_encode_params_init(&def);
        p = &def;
    }
    if (!pixels)
        return bpg_set_err(err, BPG_E_ARG, "bpg_encode: pixels is NULL");
    if (channels < 1 || channels > 4)
        return bpg_set_err(err, BPG_E_ARG,
                           "image must have 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) "
                           "channels, got %d", channels);
    if (width < 1 || height < 1)
        return bpg_set_err(err, BPG_E_ARG, "image is empty (%ux%u)", width, height);
    if (width > BPG_MAX_SIDE || height > BPG_MAX_SIDE)
        return bpg_set_err(err, BPG_E_LIMIT, "image %ux%u: a side exceeds the BPG limit of %u",
                           width, height, BPG_MAX_SIDE);
    if ((uint64_t)width * height > BPG_MAX_PIXELS)
        return bpg_set_err(err, BPG_E_LIMIT, "image %ux%u has more than %u pixels", width,
                           height, BPG_MAX_PIXELS);
    if (row_stride < (size_t)width * (size_t)channels)
        return bpg_set_err(err, BPG_E_ARG, "row_stride %zu is smaller than width*channels",
                           row_stride);
    if (p->qp < 0 || p->qp > 51)
        return bpg_set_err(err, BPG_E_ARG, "qp must be in 0..51, got %d", p->qp);
    if (p->alpha_qp < -1 || p->alpha_qp > 51)
        return bpg_set_err(err, BPG_E_ARG, "alpha_qp must be -1 or in 0..51, got %d",
                           p->alpha_qp);
    if (p->chroma != 420 && p->chroma != 422 && p->chroma != 444)
        return bpg_set_err(err, BPG_E_ARG, "chroma format must be 420, 422 or 444, got %d",
                           p->chroma);
    if (p->level < 1 || p->level > 9)
        return bpg_set_err(err, BPG_E_ARG, "level must be in 1..9, got %d", p->level);
    if (p->bit_depth != 8 && p->bit_depth != 10 && p->bit_depth != 12)
        return bpg_set_err(err, BPG_E_ARG, "bit depth must be 8, 10 or 12, got %d",
                           p->bit_depth);
    if (p->color_space < 0 || p->color_space > 4)
        return bpg_set_err(err, BPG_E_ARG, "color space must be in 0..4, got %d",
                           p->color_space);
    if (p->lossless && p->limited_range)
        return bpg_set_err(err, BPG_E_ARG, "lossless coding requires full range");

    w = (int)width;
    h = (int)height;
    gray = channels <= 2;
    has_alpha = channels == 2 || channels == 4;
    limited = p->limited_range ? 1 : 0;
    if (p->lossless) { /* bpgenc -lossless */
        cs = BPG_CS_RGB;
        fmt = 3;
        bd = 8;
    } else {
        cs = p->color_space;
        bd = p->bit_depth;
        fmt = p->chroma == 420 ? 1 : (p->chroma == 422 ? 2 : 3);
    }
    if (gray) {
        cs = BPG_CS_YCBCR; /* read_png forces YCbCr for gray images */
        fmt = 0;
    } else if (cs == BPG_CS_RGB) {
        fmt = 3; /* -c rgb implies 4:4:4: no decimation */
    }
    phase = p->mpeg2_siting ? 0 : 1;
    /* bpgenc pads to a multiple of 8 (x265's minimum CU) and codes 64x64 CTUs.
       x265 3.x refuses pictures smaller than one CTU, which bpgenc never had
       to handle (its bundled x265 accepted them): such pictures use the
       largest CTU that fits (32 or 16) and, when a side is at most 8, 16x16
       minimum CUs with padding to a multiple of 16.  The compact hevc_header
       records both sizes, so the files stay standard BPG. */
    cb = CB_SIZE;
    w1 = (w + cb - 1) & ~(cb - 1);
    h1 = (h + cb - 1) & ~(cb - 1);
    ctu = 64;
    if (w1 < 64 || h1 < 64) {
        int m = w1 < h1 ? w1 : h1;
        ctu = m >= 32 ? 32 : 16;
        if (m < 16) {
            cb = 16;
            w1 = (w + cb - 1) & ~(cb - 1);
            h1 = (h + cb - 1) & ~(cb - 1);
        }
    }

    memset(&img, 0, sizeof(img));
    memset(&aimg, 0, sizeof(aimg));
    bpg_dynbuf_init(&cbuf);
    bpg_dynbuf_init(&abuf);
    bpg_dynbuf_init(&hevc);
    bpg_dynbuf_init(&file);

    img.fmt = fmt;
    img.w = w1;
    img.h = h1;
    img.ctu_size = aimg.ctu_size = ctu;
    img.min_cb_size = aimg.min_cb_size = cb;
    for (c = 0; c < (gray ? 1 : 3); c++) {
        int hs = (c > 0 && (fmt == 1 || fmt == 2)), vs = (c > 0 && fmt == 1);
        img.pw[c] = w1 >> hs;
        img.ph[c] = h1 >> vs;
        img.plane[c] = (PIXEL *)malloc((size_t)img.pw[c] * img.ph[c] * sizeof(PIXEL));
        if (!img.plane[c]) {
            ret = bpg_set_err(err, BPG_E_NOMEM, "out of memory (%dx%d planes)", w1, h1);
            goto done;
        }
    }
    if (has_alpha) {
        aimg.fmt = 0;
        aimg.w = w1;
        aimg.h = h1;
        aimg.pw[0] = w1;
        aimg.ph[0] = h1;
        aimg.plane[0] = (PIXEL *)malloc((size_t)w1 * h1 * sizeof(PIXEL));
        if (!aimg.plane[0]) {
            ret = bpg_set_err(err, BPG_E_NOMEM, "out of memory (alpha plane)");
            goto done;
        }
    }
    /* full-resolution chroma before decimation */
    if (!gray && fmt != 3) {
        for (c = 0; c < 2; c++) {
            full_c[c] = (PIXEL *)malloc((size_t)w * h * sizeof(PIXEL));
            if (!full_c[c]) {
                ret = bpg_set_err(err, BPG_E_NOMEM, "out of memory (chroma planes)");
                goto done;
            }
        }
    }

    /* 1. colour conversion (read_png) */
    convert_init(&cvt, bd, cs, limited);
    for (y = 0; y < h; y++) {
        const uint8_t *row = pixels + (size_t)y * row_stride;
        PIXEL *yp = img.plane[0] + (size_t)y * img.pw[0];
        if (gray) {
            luma8_to_gray(&cvt, yp, row, w, channels);
        } else {
            PIXEL *cbp, *crp;
            if (fmt == 3) {
                cbp = img.plane[1] + (size_t)y * img.pw[1];
                crp = img.plane[2] + (size_t)y * img.pw[2];
            } else {
                cbp = full_c[0] + (size_t)y * w;
                crp = full_c[1] + (size_t)y * w;
            }
            if (cs == BPG_CS_RGB)
                rgb24_to_rgb(&cvt, yp, cbp, crp, row, w, channels);
            else if (cs == BPG_CS_YCGCO)
                rgb24_to_ycgco(&cvt, yp, cbp, crp, row, w, channels);
            else
                rgb24_to_ycc(&cvt, yp, cbp, crp, row, w, channels);
        }
        if (has_alpha)
            gray8_to_gray(&cvt, aimg.plane[0] + (size_t)y * w1, row + (gray ? 1 : 3), w,
                          channels);
    }

    /* 2. chroma decimation on the real-size planes */
    if (fmt == 1 || fmt == 2) {
        for (c = 0; c < 2; c++) {
            if (fmt == 1) {
                if (decimate_420(img.plane[c + 1], img.pw[c + 1], full_c[c], w, w, h, bd,
                                 phase) < 0) {
                    ret = bpg_set_err(err, BPG_E_NOMEM, "out of memory (decimation)");
                    goto done;
                }
            } else {
                for (y = 0; y < h; y++)
                    decimate_422(img.plane[c + 1] + (size_t)y * img.pw[c + 1],
                                 full_c[c] + (size_t)y * w, w, bd, phase);
            }
            free(full_c[c]);
            full_c[c] = NULL;
        }
    }

    /* 3. padding to a multiple of 8 */
    for (c = 0; c < (gray ? 1 : 3); c++) {
        int hs = (c > 0 && (fmt == 1 || fmt == 2)), vs = (c > 0 && fmt == 1);
        pad_plane(img.plane[c], img.pw[c], (w + hs) >> hs, (h + vs) >> vs, img.pw[c], img.ph[c]);
    }
    if (has_alpha)
        pad_plane(aimg.plane[0], w1, w, h, w1, h1);

    /* 4-5. x265 */
    ret = x265_encode_image(&img, bd, p->qp, p->lossless ? 1 : 0, p->level, p->hash, &cbuf, err);
    if (ret)
        goto done;
    if (has_alpha) {
        qp_alpha = p->alpha_qp < 0 ? p->qp : p->alpha_qp;
        ret = x265_encode_image(&aimg, bd, qp_alpha, p->lossless ? 1 : 0, p->level, p->hash,
                                &abuf, err);
        if (ret)
            goto done;
    }

    /* 6-7. compact headers and NAL rewriting */
    ret = build_modified_hevc(&cbuf, has_alpha ? &abuf : NULL, &hevc, err);
    if (ret)
        goto done;

    /* 8. the file */
    if (fmt == 0)
        pixel_format = BPG_PF_GRAY;
    else if (fmt == 1)
        pixel_format = phase ? BPG_PF_420 : BPG_PF_420_MPEG2;
    else if (fmt == 2)
        pixel_format = phase ? BPG_PF_422 : BPG_PF_422_MPEG2;
    else
        pixel_format = BPG_PF_444;
    hl = 0;
    head[hl++] = 0x42;
    head[hl++] = 0x50;
    head[hl++] = 0x47;
    head[hl++] = 0xFB;
    head[hl++] = (uint8_t)((pixel_format << 5) | (has_alpha << 4) | (bd - 8));
    head[hl++] = (uint8_t)((cs << 4) | (0 << 3) | (0 << 2) | (limited << 1) | 0);
    hl += (size_t)bpg_put_ue7(head + hl, width);
    hl += (size_t)bpg_put_ue7(head + hl, height);
    hl += (size_t)bpg_put_ue7(head + hl, 0); /* picture_data_length: to the end of file */
    bpg_dynbuf_push(&file, head, hl);
    bpg_dynbuf_push(&file, hevc.buf, hevc.len);
    if (file.failed) {
        ret = bpg_set_err(err, BPG_E_NOMEM, "out of memory (output file)");
        goto done;
    }
    *out = file.buf;
    *out_len = file.len;
    file.buf = NULL;
done:
    for (c = 0; c < 3; c++)
        free(img.plane[c]);
    free(aimg.plane[0]);
    free(full_c[0]);
    free(full_c[1]);
    bpg_dynbuf_free(&cbuf);
    bpg_dynbuf_free(&abuf);
    bpg_dynbuf_free(&hevc);
    bpg_dynbuf_free(&file);
    return ret;
}
