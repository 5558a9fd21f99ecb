/* Shared helpers and the BPG header parser. */
#include "bpg_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bpg_set_err(char *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, BPG_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *bpg_strerror(int code)
{
    switch (code) {
    case BPG_OK: return "success";
    case BPG_E_ARG: return "invalid argument";
    case BPG_E_FORMAT: return "corrupted or truncated BPG file";
    case BPG_E_UNSUPPORTED: return "unsupported BPG feature";
    case BPG_E_LIMIT: return "image too large";
    case BPG_E_NOMEM: return "out of memory";
    case BPG_E_CODEC: return "HEVC codec error";
    default: return "unknown error";
    }
}

void bpg_free(void *ptr)
{
    free(ptr);
}

/* ------------------------------------------------------------------ dynbuf */

void bpg_dynbuf_init(bpg_dynbuf *b)
{
    b->buf = NULL;
    b->len = 0;
    b->size = 0;
    b->failed = 0;
}

void bpg_dynbuf_free(bpg_dynbuf *b)
{
    free(b->buf);
    bpg_dynbuf_init(b);
}

int bpg_dynbuf_reserve(bpg_dynbuf *b, size_t extra)
{
    size_t need, new_size;
    uint8_t *p;

    if (b->failed)
        return -1;
    if (extra > SIZE_MAX - b->len) {
        b->failed = 1;
        return -1;
    }
    need = b->len + extra;
    if (need <= b->size)
        return 0;
    new_size = b->size + b->size / 2;
    if (new_size < need)
        new_size = need;
    if (new_size < 64)
        new_size = 64;
    p = (uint8_t *)realloc(b->buf, new_size);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->buf = p;
    b->size = new_size;
    return 0;
}

int bpg_dynbuf_push(bpg_dynbuf *b, const uint8_t *data, size_t len)
{
    if (len == 0)
        return b->failed ? -1 : 0;
    if (bpg_dynbuf_reserve(b, len) < 0)
        return -1;
    memcpy(b->buf + b->len, data, len);
    b->len += len;
    return 0;
}

int bpg_dynbuf_byte(bpg_dynbuf *b, uint8_t v)
{
    return bpg_dynbuf_push(b, &v, 1);
}

/* --------------------------------------------------------------------- ue7 */

int bpg_get_ue7(const uint8_t *buf, size_t len, uint32_t *v)
{
    uint64_t acc = 0;
    size_t i;

    for (i = 0; i < 5; i++) {
        uint8_t a;
        if (i >= len)
            return -1;
        a = buf[i];
        if (i == 0 && a == 0x80)
            return -2; /* non canonical */
        acc = (acc << 7) | (a & 0x7f);
        if (!(a & 0x80)) {
            if (acc > 0xFFFFFFFFu)
                return -3;
            *v = (uint32_t)acc;
            return (int)(i + 1);
        }
    }
    return -3; /* a 6th byte would be needed */
}

int bpg_put_ue7(uint8_t *p, uint32_t v)
{
    int n = 1, j, k = 0;
    while (n < 5 && v >= (1u << (7 * n)))
        n++;
    for (j = n - 1; j >= 1; j--)
        p[k++] = (uint8_t)(((v >> (7 * j)) & 0x7f) | 0x80);
    p[k++] = (uint8_t)(v & 0x7f);
    return k;
}

/* -------------------------------------------------------------- bit reader */

void bpg_br_init(bpg_bitreader *br, const uint8_t *buf, size_t len)
{
    br->buf = buf;
    br->len = len;
    br->pos = 0;
    br->overread = 0;
}

uint32_t bpg_br_bits(bpg_bitreader *br, int n)
{
    uint32_t v = 0;
    int i;
    for (i = 0; i < n; i++) {
        size_t byte = br->pos >> 3;
        int bit = 0;
        if (byte < br->len)
            bit = (br->buf[byte] >> (7 - (br->pos & 7))) & 1;
        else
            br->overread = 1;
        v = (v << 1) | (uint32_t)bit;
        br->pos++;
    }
    return v;
}

void bpg_br_skip(bpg_bitreader *br, size_t n)
{
    size_t total = br->len * 8;
    if (br->pos > total || n > total - br->pos) {
        br->overread = 1;
        br->pos = total;
        return;
    }
    br->pos += n;
}

uint32_t bpg_br_ue(bpg_bitreader *br)
{
    int zeros = 0;
    while (!bpg_br_bits(br, 1)) {
        if (br->overread)
            return UINT32_MAX;
        zeros++;
        if (zeros > 31) {
            br->overread = 1;
            return UINT32_MAX;
        }
    }
    if (zeros == 0)
        return 0;
    return (uint32_t)(((1ull << zeros) | bpg_br_bits(br, zeros)) - 1);
}

/* -------------------------------------------------------------- bit writer */

void bpg_bw_init(bpg_bitwriter *bw, uint8_t *buf, size_t cap)
{
    bw->buf = buf;
    bw->cap = cap;
    bw->pos = 0;
    bw->overflow = 0;
    memset(buf, 0, cap);
}

void bpg_bw_bits(bpg_bitwriter *bw, int n, uint32_t v)
{
    int i;
    for (i = n - 1; i >= 0; i--) {
        size_t byte = bw->pos >> 3;
        if (byte >= bw->cap) {
            bw->overflow = 1;
            return;
        }
        if ((v >> i) & 1)
            bw->buf[byte] |= (uint8_t)(0x80 >> (bw->pos & 7));
        bw->pos++;
    }
}

void bpg_bw_ue(bpg_bitwriter *bw, uint32_t v)
{
    uint64_t x = (uint64_t)v + 1;
    int n = 0;
    uint64_t a = x;
    while (a) {
        a >>= 1;
        n++;
    }
    if (n > 1)
        bpg_bw_bits(bw, n - 1, 0);
    /* n <= 33 bits; write the high bit separately when n == 33 */
    if (n == 33) {
        bpg_bw_bits(bw, 1, 1);
        bpg_bw_bits(bw, 32, (uint32_t)x);
    } else {
        bpg_bw_bits(bw, n, (uint32_t)x);
    }
}

void bpg_bw_trailing(bpg_bitwriter *bw)
{
    bpg_bw_bits(bw, 1, 1);
    while (bw->pos & 7)
        bpg_bw_bits(bw, 1, 0);
}

size_t bpg_bw_bytes(const bpg_bitwriter *bw)
{
    return (bw->pos + 7) >> 3;
}

/* -------------------------------------------------------------------- NALs */

long bpg_find_nal_end(const uint8_t *buf, size_t len, int has_startcode)
{
    size_t idx = 0;
    if (has_startcode) {
        if (len >= 4 && buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 1)
            idx = 4;
        else if (len >= 3 && buf[0] == 0 && buf[1] == 0 && buf[2] == 1)
            idx = 3;
        else
            return -1;
    }
    if (idx + 2 > len)
        return -1; /* no room for the NAL header */
    for (;;) {
        if (idx + 2 >= len)
            return (long)len;
        if (buf[idx] == 0 && buf[idx + 1] == 0 && buf[idx + 2] == 1)
            return (long)idx;
        if (idx + 3 < len && buf[idx] == 0 && buf[idx + 1] == 0 && buf[idx + 2] == 0 &&
            buf[idx + 3] == 1)
            return (long)idx;
        idx++;
    }
}

/* ----------------------------------------------------------- hevc_header */

void bpg_write_pcm_fields(bpg_bitwriter *bw, const bpg_hevc_header *h)
{
    if (!h->pcm)
        return;
    bpg_bw_bits(bw, 4, (uint32_t)(h->pcm_bit_depth_luma - 1));
    bpg_bw_bits(bw, 4, (uint32_t)(h->pcm_bit_depth_chroma - 1));
    bpg_bw_ue(bw, (uint32_t)(h->log2_min_pcm_cb_size - 3));
    bpg_bw_ue(bw, (uint32_t)h->log2_diff_max_min_pcm_cb_size);
    bpg_bw_bits(bw, 1, (uint32_t)h->pcm_loop_filter_disabled);
}

void bpg_write_sps_extension(bpg_bitwriter *bw, const bpg_hevc_header *h)
{
    bpg_bw_bits(bw, 1, (uint32_t)h->sps_extension);
    if (!h->sps_extension)
        return;
    bpg_bw_bits(bw, 1, (uint32_t)h->sps_range_extension);
    bpg_bw_bits(bw, 7, 0);       /* sps_extension_7bits */
    if (h->sps_range_extension)
        bpg_bw_bits(bw, 9, (uint32_t)h->range_extension_flags);
}

int bpg_write_hevc_header_bits(const bpg_hevc_header *h, uint8_t *buf, size_t cap)
{
    bpg_bitwriter bw;
    bpg_bw_init(&bw, buf, cap);
    bpg_bw_ue(&bw, (uint32_t)(h->log2_min_cb_size - 3));
    bpg_bw_ue(&bw, (uint32_t)h->log2_diff_max_min_cb_size);
    bpg_bw_ue(&bw, (uint32_t)(h->log2_min_tb_size - 2));
    bpg_bw_ue(&bw, (uint32_t)h->log2_diff_max_min_tb_size);
    bpg_bw_ue(&bw, (uint32_t)h->max_transform_hierarchy_depth);
    bpg_bw_bits(&bw, 1, (uint32_t)h->sao);
    bpg_bw_bits(&bw, 1, (uint32_t)h->pcm);
    bpg_write_pcm_fields(&bw, h);
    bpg_bw_bits(&bw, 1, (uint32_t)h->strong_intra_smoothing);
    bpg_write_sps_extension(&bw, h);
    if (bw.overflow)
        return -1;
    return (int)bpg_bw_bytes(&bw);
}

/* Range-extension flags (9 bits, MSB = transform_skip_rotation) that neither
   bpgenc nor libde265 use: explicit_rdpcm, extended_precision,
   high_precision_offsets, cabac_bypass_alignment. */
#define BPG_RANGE_EXT_FORBIDDEN ((1 << (8 - 3)) | (1 << (8 - 4)) | (1 << (8 - 6)) | (1 << 0))

static int ue7_error(char *err, int ret, const char *field, size_t offset)
{
    if (ret == -1)
        return bpg_set_err(err, BPG_E_FORMAT, "truncated BPG header: %s missing (byte %zu)",
                           field, offset);
    if (ret == -2)
        return bpg_set_err(err, BPG_E_FORMAT,
                           "invalid BPG header: non-canonical ue7 (leading 0x80) in %s "
                           "at byte %zu", field, offset);
    return bpg_set_err(err, BPG_E_FORMAT,
                       "invalid BPG header: ue7 %s at byte %zu is longer than 5 bytes or "
                       "exceeds 32 bits", field, offset);
}

/* Reads a ue7 at data[*idx] (below end), capped at 2^30 - 1 like libbpg. */
static int read_len(const uint8_t *data, size_t end, size_t *idx, uint32_t *v,
                    const char *field, char *err)
{
    int ret = bpg_get_ue7(data + *idx, end - *idx, v);
    if (ret < 0)
        return ue7_error(err, ret, field, *idx);
    if (*v > BPG_MAX_DATA_LEN)
        return bpg_set_err(err, BPG_E_FORMAT,
                           "invalid BPG header: %s = %u exceeds 2^30-1", field, *v);
    *idx += (size_t)ret;
    return 0;
}

static int parse_hevc_header(const uint8_t *data, size_t end, size_t *idx, int bit_depth,
                             int chroma_format_idc, bpg_hevc_header *h, const char *what,
                             char *err)
{
    uint32_t hlen, v;
    bpg_bitreader br;
    int ret, log2_ctb, log2_max_tb, max_depth;
    char field[64];

    snprintf(field, sizeof(field), "%s hevc_header_length", what);
    ret = read_len(data, end, idx, &hlen, field, err);
    if (ret)
        return ret;
    if (hlen == 0)
        return bpg_set_err(err, BPG_E_FORMAT, "invalid BPG file: empty %s hevc_header", what);
    if (hlen > end - *idx)
        return bpg_set_err(err, BPG_E_FORMAT,
                           "truncated BPG file: %s hevc_header_length %u exceeds the %zu "
                           "bytes left", what, hlen, end - *idx);
    bpg_br_init(&br, data + *idx, hlen);
    memset(h, 0, sizeof(*h));

    v = bpg_br_ue(&br);
    if (br.overread || v > 3)
        goto bad_cb;
    h->log2_min_cb_size = (int)v + 3;
    v = bpg_br_ue(&br);
    if (br.overread || v > 3)
        goto bad_cb;
    h->log2_diff_max_min_cb_size = (int)v;
    log2_ctb = h->log2_min_cb_size + h->log2_diff_max_min_cb_size;
    if (log2_ctb < 4 || log2_ctb > 6)
        goto bad_cb;
    v = bpg_br_ue(&br);
    if (br.overread || v > 3)
        goto bad_tb;
    h->log2_min_tb_size = (int)v + 2;
    if (h->log2_min_tb_size >= h->log2_min_cb_size)
        goto bad_tb;
    v = bpg_br_ue(&br);
    if (br.overread || v > 3)
        goto bad_tb;
    h->log2_diff_max_min_tb_size = (int)v;
    log2_max_tb = h->log2_min_tb_size + h->log2_diff_max_min_tb_size;
    if (log2_max_tb > 5 || log2_max_tb > log2_ctb)
        goto bad_tb;
    v = bpg_br_ue(&br);
    max_depth = log2_ctb - h->log2_min_tb_size;
    if (br.overread || v > (uint32_t)max_depth)
        return bpg_set_err(err, BPG_E_FORMAT,
                           "invalid %s hevc_header: max_transform_hierarchy_depth %u out of "
                           "range 0..%d", what, v, max_depth);
    h->max_transform_hierarchy_depth = (int)v;
    h->sao = (int)bpg_br_bits(&br, 1);
    h->pcm = (int)bpg_br_bits(&br, 1);
    if (h->pcm) {
        int max_pcm = log2_ctb < 5 ? log2_ctb : 5;
        h->pcm_bit_depth_luma = (int)bpg_br_bits(&br, 4) + 1;
        h->pcm_bit_depth_chroma = (int)bpg_br_bits(&br, 4) + 1;
        v = bpg_br_ue(&br);
        if (br.overread || v > 2)
            goto bad_pcm;
        h->log2_min_pcm_cb_size = (int)v + 3;
        v = bpg_br_ue(&br);
        if (br.overread || v > 2)
            goto bad_pcm;
        h->log2_diff_max_min_pcm_cb_size = (int)v;
        if (h->log2_min_pcm_cb_size + h->log2_diff_max_min_pcm_cb_size > max_pcm ||
            h->log2_min_pcm_cb_size < h->log2_min_cb_size ||
            h->pcm_bit_depth_luma > bit_depth ||
            (chroma_format_idc != 0 && h->pcm_bit_depth_chroma > bit_depth))
            goto bad_pcm;
        h->pcm_loop_filter_disabled = (int)bpg_br_bits(&br, 1);
    }
    h->strong_intra_smoothing = (int)bpg_br_bits(&br, 1);
    h->sps_extension = (int)bpg_br_bits(&br, 1);
    if (h->sps_extension) {
        h->sps_range_extension = (int)bpg_br_bits(&br, 1);
        v = bpg_br_bits(&br, 7);
        if (v != 0 && !br.overread)
            return bpg_set_err(err, BPG_E_UNSUPPORTED,
                               "unsupported %s hevc_header: sps_extension_7bits = 0x%x "
                               "(must be 0)", what, v);
        if (h->sps_range_extension) {
            h->range_extension_flags = (int)bpg_br_bits(&br, 9);
            if ((h->range_extension_flags & BPG_RANGE_EXT_FORBIDDEN) && !br.overread)
                return bpg_set_err(err, BPG_E_UNSUPPORTED,
                                   "unsupported %s hevc_header: range extension flags 0x%03x "
                                   "(explicit_rdpcm, extended_precision, high_precision_offsets "
                                   "and cabac_bypass_alignment must be 0)",
                                   what, h->range_extension_flags);
        }
    }
    if (br.overread)
        return bpg_set_err(err, BPG_E_FORMAT,
                           "truncated BPG file: %s hevc_header (%u bytes) ends inside its "
                           "fields", what, hlen);
    *idx += hlen;
    return 0;
bad_cb:
    return bpg_set_err(err, BPG_E_FORMAT,
                       "invalid %s hevc_header: coding block sizes out of range (min CB "
                       "8..64, CTB 16..64)", what);
bad_tb:
    return bpg_set_err(err, BPG_E_FORMAT,
                       "invalid %s hevc_header: transform block sizes out of range (4..32, "
                       "below the minimum CB and within the CTB)", what);
bad_pcm:
    return bpg_set_err(err, BPG_E_FORMAT, "invalid %s hevc_header: PCM parameters out of range",
                       what);
}

int bpg_parse_header(const uint8_t *data, size_t len, uint32_t max_pixels, bpg_info *info,
                     char *err)
{
    size_t idx, end;
    uint32_t v;
    int ret, b;

    if (!info)
        return bpg_set_err(err, BPG_E_ARG, "bpg_parse_header: info is NULL");
    memset(info, 0, sizeof(*info));
    if (!data && len)
        return bpg_set_err(err, BPG_E_ARG, "bpg_parse_header: data is NULL");
    if (max_pixels == 0 || max_pixels > BPG_MAX_PIXELS)
        max_pixels = BPG_MAX_PIXELS;
    if (len == 0)
        return bpg_set_err(err, BPG_E_FORMAT, "empty BPG file (0 bytes)");
    if (len < 4 || ((uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
                    (uint32_t)data[2] << 8 | data[3]) != BPG_MAGIC)
        return bpg_set_err(err, BPG_E_FORMAT, "not a BPG file (magic 42 50 47 FB missing)");
    if (len < 6)
        return bpg_set_err(err, BPG_E_FORMAT, "truncated BPG header (%zu bytes)", len);

    b = data[4];
    info->pixel_format = b >> 5;
    info->alpha1_flag = (b >> 4) & 1;
    info->bit_depth = (b & 15) + 8;
    b = data[5];
    info->color_space = b >> 4;
    info->has_extension = (b >> 3) & 1;
    info->alpha2_flag = (b >> 2) & 1;
    info->limited_range = (b >> 1) & 1;
    info->has_animation = b & 1;

    if (info->pixel_format > 5)
        return bpg_set_err(err, BPG_E_FORMAT, "invalid BPG header: pixel_format %d (0..5)",
                           info->pixel_format);
    if (info->bit_depth > 14)
        return bpg_set_err(err, BPG_E_FORMAT,
                           "invalid BPG header: bit depth %d (bit_depth_minus_8 must be <= 6)",
                           info->bit_depth);
    if (info->color_space > 4)
        return bpg_set_err(err, BPG_E_FORMAT, "invalid BPG header: color_space %d (0..4)",
                           info->color_space);
    if (info->pixel_format == BPG_PF_GRAY && info->color_space != 0)
        return bpg_set_err(err, BPG_E_FORMAT,
                           "invalid BPG header: grayscale with color_space %d (must be 0)",
                           info->color_space);
    static const int cfi[6] = {0, 1, 2, 3, 1, 2};
    info->chroma_format_idc = cfi[info->pixel_format];
    info->mpeg2_siting = info->pixel_format >= 4;
    if (info->alpha1_flag) {
        info->has_alpha = 1;
        info->premultiplied_alpha = info->alpha2_flag;
    } else if (info->alpha2_flag) {
        info->has_w_plane = 1;
        if (info->pixel_format == BPG_PF_GRAY)
            return bpg_set_err(err, BPG_E_FORMAT,
                               "invalid BPG header: W plane (alpha2 without alpha1) on a "
                               "grayscale image");
    }

    idx = 6;
    ret = read_len(data, len, &idx, &info->width, "picture_width", err);
    if (ret)
        return ret;
    ret = read_len(data, len, &idx, &info->height, "picture_height", err);
    if (ret)
        return ret;
    if (info->width == 0 || info->height == 0)
        return bpg_set_err(err, BPG_E_FORMAT, "invalid BPG header: picture size %ux%u",
                           info->width, info->height);
    if (info->width > BPG_MAX_SIDE || info->height > BPG_MAX_SIDE)
        return bpg_set_err(err, BPG_E_LIMIT,
                           "BPG header claims %ux%u pixels: a side exceeds the limit of %u",
                           info->width, info->height, BPG_MAX_SIDE);
    if ((uint64_t)info->width * info->height > max_pixels)
        return bpg_set_err(err, BPG_E_LIMIT,
                           "BPG header claims %ux%u pixels, more than the limit of %u",
                           info->width, info->height, max_pixels);
    ret = read_len(data, len, &idx, &info->picture_data_length, "picture_data_length", err);
    if (ret)
        return ret;
    if (info->has_extension) {
        size_t ext_end;
        ret = read_len(data, len, &idx, &info->extension_data_length,
                       "extension_data_length", err);
        if (ret)
            return ret;
        if (info->extension_data_length > len - idx)
            return bpg_set_err(err, BPG_E_FORMAT,
                               "truncated BPG file: extension_data_length %u exceeds the %zu "
                               "bytes left", info->extension_data_length, len - idx);
        ext_end = idx + info->extension_data_length;
        if (info->has_animation) {
            /* libbpg parses the tags only for animations (it needs tag 5) */
            size_t p = idx;
            while (p < ext_end) {
                uint32_t tag, tlen;
                ret = bpg_get_ue7(data + p, ext_end - p, &tag);
                if (ret < 0)
                    return ue7_error(err, ret, "extension tag", p);
                p += (size_t)ret;
                ret = read_len(data, ext_end, &p, &tlen, "extension length", err);
                if (ret)
                    return ret;
                if (tlen > ext_end - p)
                    return bpg_set_err(err, BPG_E_FORMAT,
                                       "invalid BPG file: extension tag %u length %u exceeds "
                                       "the extension data", tag, tlen);
                if (tag == 5) {
                    size_t q = p, qend = p + tlen;
                    uint32_t lc, num, den;
                    if ((ret = read_len(data, qend, &q, &lc, "loop_count", err)) ||
                        (ret = read_len(data, qend, &q, &num, "frame_period_num", err)) ||
                        (ret = read_len(data, qend, &q, &den, "frame_period_den", err)))
                        return ret;
                    if (num == 0 || den == 0 || num > 0xffff || den > 0xffff || lc > 0xffff)
                        return bpg_set_err(err, BPG_E_FORMAT,
                                           "invalid BPG animation control: loop_count %u, "
                                           "frame period %u/%u", lc, num, den);
                    info->has_anim_control = 1;
                    info->loop_count = lc;
                    info->frame_period_num = num;
                    info->frame_period_den = den;
                }
                p += tlen;
            }
        }
        idx = ext_end;
    }
    if (info->has_animation && !info->has_anim_control)
        return bpg_set_err(err, BPG_E_FORMAT,
                           "invalid BPG file: animation_flag set without the animation "
                           "control extension (tag 5)");

    end = len;
    if (info->picture_data_length) {
        if (info->picture_data_length > len - idx)
            return bpg_set_err(err, BPG_E_FORMAT,
                               "truncated BPG file: picture_data_length %u exceeds the %zu "
                               "bytes left", info->picture_data_length, len - idx);
        end = idx + info->picture_data_length;
    }
    info->hevc_header_offset = idx;
    if (info->has_alpha || info->has_w_plane) {
        ret = parse_hevc_header(data, end, &idx, info->bit_depth, 0, &info->alpha_header,
                                "alpha", err);
        if (ret)
            return ret;
    }
    ret = parse_hevc_header(data, end, &idx, info->bit_depth, info->chroma_format_idc,
                            &info->colour_header, "colour", err);
    if (ret)
        return ret;
    if (idx >= end)
        return bpg_set_err(err, BPG_E_FORMAT, "truncated BPG file: no HEVC data after the "
                                              "header");
    info->hevc_data_offset = idx;
    info->hevc_data_end = end;
    v = (1u << info->colour_header.log2_min_cb_size) - 1;
    info->coded_width = (info->width + v) & ~v;
    info->coded_height = (info->height + v) & ~v;
    return BPG_OK;
}

int bpg_native_channels(const bpg_info *info)
{
    return (info->pixel_format == BPG_PF_GRAY ? 1 : 3) + (info->has_alpha ? 1 : 0);
}
