/*
 * BPG decoder on libde265 (docs/bpg-format.md sections 3 and 4): the compact
 * hevc_header is expanded into a standard VPS + SPS, the first access unit's
 * NAL units are fed to libde265 (alpha NALs, nuh_layer_id 1, to a second
 * decoder), and the planes are cropped, upsampled and converted to 8-bit RGB
 * with libbpg's filters and fixed-point matrices (bpgdec output).
 *
 * Robustness: the header parser bounds-checks every field; the NAL walker
 * never reads past the HEVC data; VPS/SPS NAL units inside hevc_data are
 * refused (they would override the synthesized ones); the decoded picture's
 * chroma format, bit depth and plane sizes are checked before any sample is
 * read; samples are clamped to the bit depth; any libde265 error or warning
 * about the stream is reported as a corrupted file.  HEVC has no end marker
 * and libde265 silently leaves undecoded whatever a truncated slice does not
 * reach (as uninitialised memory when SAO is on, since it then decodes into
 * buffers of its own allocator), so every stream is first decoded with SAO
 * off into our buffers filled with a pattern, then checked for left-over
 * pattern (see decode_stream); the first slice header is checked as well.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* posix_memalign */
#endif
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libde265/de265.h>

#include "bpg_common.h"

static pthread_once_t g_de265_once = PTHREAD_ONCE_INIT;
static int g_de265_ok;

/* One permanent de265_init() reference so that the global tables are not
   freed and rebuilt around every decoder; verbosity 0 (no logging). */
static void de265_global_init(void)
{
    g_de265_ok = de265_init() == DE265_OK;
    de265_set_verbosity(0);
}

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static inline uint8_t clamp8(int64_t a)
{
    return (uint8_t)(a < 0 ? 0 : (a > 255 ? 255 : a));
}

/* ------------------------------------------------- VPS / SPS synthesis */

static void write_ptl(bpg_bitwriter *bw, int profile_idc)
{
    int i;
    bpg_bw_bits(bw, 2, 0); /* general_profile_space */
    bpg_bw_bits(bw, 1, 0); /* general_tier_flag */
    bpg_bw_bits(bw, 5, (uint32_t)profile_idc);
    for (i = 0; i < 32; i++)
        bpg_bw_bits(bw, 1, (uint32_t)(i == profile_idc || (profile_idc == 1 && i == 2)));
    bpg_bw_bits(bw, 1, 1); /* progressive_source_flag */
    bpg_bw_bits(bw, 1, 0); /* interlaced_source_flag */
    bpg_bw_bits(bw, 1, 0); /* non_packed_constraint_flag */
    bpg_bw_bits(bw, 1, 1); /* frame_only_constraint_flag */
    bpg_bw_bits(bw, 32, 0); /* 43 reserved bits ... */
    bpg_bw_bits(bw, 11, 0);
    bpg_bw_bits(bw, 1, 0);  /* ... and general_inbld/reserved */
    bpg_bw_bits(bw, 8, 186); /* general_level_idc (ignored by libde265) */
}

/* Appends 00 00 00 01 + the NAL (2-byte header + rbsp) with emulation
   prevention bytes inserted. */
static void push_escaped_nal(bpg_dynbuf *out, const uint8_t *nal, size_t len)
{
    static const uint8_t sc[4] = {0, 0, 0, 1};
    size_t i;
    int zeros = 0;
    bpg_dynbuf_push(out, sc, 4);
    if (bpg_dynbuf_reserve(out, len + len / 2 + 1) < 0)
        return;
    for (i = 0; i < len; i++) {
        uint8_t b = nal[i];
        if (zeros >= 2 && b <= 3) {
            out->buf[out->len++] = 3;
            zeros = 0;
        }
        out->buf[out->len++] = b;
        zeros = b == 0 ? zeros + 1 : 0;
    }
}

/* Writes the VPS and SPS implied by a compact header (doc section 4). */
static int push_vps_sps(bpg_dynbuf *out, const bpg_hevc_header *h, int chroma_format_idc,
                        int bit_depth, uint32_t width, uint32_t height, int dpb_m1)
{
    uint8_t buf[128];
    bpg_bitwriter bw;
    int profile_idc, v = (1 << h->log2_min_cb_size) - 1;
    uint32_t cw = (width + (uint32_t)v) & ~(uint32_t)v, ch = (height + (uint32_t)v) & ~(uint32_t)v;

    if (chroma_format_idc == 1 && bit_depth == 8)
        profile_idc = 1; /* Main */
    else if (chroma_format_idc == 1 && bit_depth <= 10)
        profile_idc = 2; /* Main 10 */
    else
        profile_idc = 4; /* format range extensions */

    /* VPS */
    bpg_bw_init(&bw, buf, sizeof(buf));
    bpg_bw_bits(&bw, 8, 0x40);
    bpg_bw_bits(&bw, 8, 0x01);
    bpg_bw_bits(&bw, 4, 0);      /* vps_video_parameter_set_id */
    bpg_bw_bits(&bw, 2, 3);      /* base_layer_internal, base_layer_available */
    bpg_bw_bits(&bw, 6, 0);      /* vps_max_layers_minus1 */
    bpg_bw_bits(&bw, 3, 0);      /* vps_max_sub_layers_minus1 */
    bpg_bw_bits(&bw, 1, 1);      /* vps_temporal_id_nesting_flag */
    bpg_bw_bits(&bw, 16, 0xffff);
    write_ptl(&bw, profile_idc);
    bpg_bw_bits(&bw, 1, 1);      /* vps_sub_layer_ordering_info_present_flag */
    bpg_bw_ue(&bw, (uint32_t)dpb_m1);
    bpg_bw_ue(&bw, 0);
    bpg_bw_ue(&bw, 0);
    bpg_bw_bits(&bw, 6, 0);      /* vps_max_layer_id */
    bpg_bw_ue(&bw, 0);           /* vps_num_layer_sets_minus1 */
    bpg_bw_bits(&bw, 1, 0);      /* vps_timing_info_present_flag */
    bpg_bw_bits(&bw, 1, 0);      /* vps_extension_flag */
    bpg_bw_trailing(&bw);
    if (bw.overflow)
        return -1;
    push_escaped_nal(out, buf, bpg_bw_bytes(&bw));

    /* SPS */
    bpg_bw_init(&bw, buf, sizeof(buf));
    bpg_bw_bits(&bw, 8, 0x42);
    bpg_bw_bits(&bw, 8, 0x01);
    bpg_bw_bits(&bw, 4, 0);      /* sps_video_parameter_set_id */
    bpg_bw_bits(&bw, 3, 0);      /* sps_max_sub_layers_minus1 */
    bpg_bw_bits(&bw, 1, 1);      /* sps_temporal_id_nesting_flag */
    write_ptl(&bw, profile_idc);
    bpg_bw_ue(&bw, 0);           /* sps_seq_parameter_set_id */
    bpg_bw_ue(&bw, (uint32_t)chroma_format_idc);
    if (chroma_format_idc == 3)
        bpg_bw_bits(&bw, 1, 0);  /* separate_colour_plane_flag */
    bpg_bw_ue(&bw, cw);
    bpg_bw_ue(&bw, ch);
    bpg_bw_bits(&bw, 1, 0);      /* conformance_window_flag */
    bpg_bw_ue(&bw, (uint32_t)(bit_depth - 8));
    bpg_bw_ue(&bw, (uint32_t)(bit_depth - 8));
    bpg_bw_ue(&bw, 4);           /* log2_max_pic_order_cnt_lsb_minus4 */
    bpg_bw_bits(&bw, 1, 1);      /* sps_sub_layer_ordering_info_present_flag */
    bpg_bw_ue(&bw, (uint32_t)dpb_m1);
    bpg_bw_ue(&bw, 0);
    bpg_bw_ue(&bw, 0);
    bpg_bw_ue(&bw, (uint32_t)(h->log2_min_cb_size - 3));
    bpg_bw_ue(&bw, (uint32_t)h->log2_diff_max_min_cb_size);
    bpg_bw_ue(&bw, (uint32_t)(h->log2_min_tb_size - 2));
    bpg_bw_ue(&bw, (uint32_t)h->log2_diff_max_min_tb_size);
    bpg_bw_ue(&bw, (uint32_t)h->max_transform_hierarchy_depth); /* inter */
    bpg_bw_ue(&bw, (uint32_t)h->max_transform_hierarchy_depth); /* intra */
    bpg_bw_bits(&bw, 1, 0);      /* scaling_list_enabled_flag */
    bpg_bw_bits(&bw, 1, 1);      /* amp_enabled_flag */
    bpg_bw_bits(&bw, 1, (uint32_t)h->sao);
    bpg_bw_bits(&bw, 1, (uint32_t)h->pcm);
    bpg_write_pcm_fields(&bw, h);
    bpg_bw_ue(&bw, 0);           /* num_short_term_ref_pic_sets */
    bpg_bw_bits(&bw, 1, 0);      /* long_term_ref_pics_present_flag */
    bpg_bw_bits(&bw, 1, 1);      /* sps_temporal_mvp_enabled_flag */
    bpg_bw_bits(&bw, 1, (uint32_t)h->strong_intra_smoothing);
    bpg_bw_bits(&bw, 1, 0);      /* vui_parameters_present_flag */
    bpg_write_sps_extension(&bw, h);
    bpg_bw_trailing(&bw);
    if (bw.overflow)
        return -1;
    push_escaped_nal(out, buf, bpg_bw_bytes(&bw));
    return out->failed ? -1 : 0;
}

/* ------------------------------------------------------- NAL collection */

/* hevc_decode_frame_internal of libbpg: splits the first access unit into the
   colour and alpha streams, prefixing each NAL with 00 00 01. */
static int collect_first_au(const uint8_t *data, const bpg_info *info, bpg_dynbuf *cbuf,
                            bpg_dynbuf *abuf, char *err)
{
    size_t pos = info->hevc_data_offset, end = info->hevc_data_end;
    int first = 1, found[2] = {0, 0};
    int has_alpha = info->has_alpha || info->has_w_plane;
    static const uint8_t sc[3] = {0, 0, 1};

    while (pos < end) {
        const uint8_t *buf = data + pos;
        size_t remaining = end - pos, s;
        long nal_end;
        int nut, layer, is_alpha;
        bpg_dynbuf *dst;

        if (first) {
            s = 0;
        } else if (remaining >= 4 && buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 1) {
            s = 4;
        } else if (remaining >= 3 && buf[0] == 0 && buf[1] == 0 && buf[2] == 1) {
            s = 3;
        } else {
            return bpg_set_err(err, BPG_E_FORMAT,
                               "corrupted BPG file: no NAL start code at byte %zu", pos);
        }
        if (remaining < s + 2)
            return bpg_set_err(err, BPG_E_FORMAT,
                               "truncated BPG file: NAL unit header cut at byte %zu", pos);
        nut = (buf[s] >> 1) & 0x3f;
        layer = ((buf[s] & 1) << 5) | (buf[s + 1] >> 3);
        if ((nut >= 32 && nut <= 35) || nut == 39 || nut >= 41) {
            if (found[0] && found[has_alpha])
                break; /* parameter sets / SEI of the next frame */
        } else if ((nut <= 9 || (nut >= 16 && nut <= 21)) && s + 2 < remaining &&
                   (buf[s + 2] & 0x80)) {
            /* first slice segment of a picture */
            if (found[0] && found[has_alpha])
                break;
            if (has_alpha && layer == 1)
                found[1] = 1;
            else
                found[0] = 1;
        }
        if (nut == 32 || nut == 33)
            return bpg_set_err(err, BPG_E_FORMAT,
                               "corrupted BPG file: %s NAL unit in hevc_data at byte %zu (BPG "
                               "stores it as the compact hevc_header)",
                               nut == 32 ? "VPS" : "SPS", pos);
        nal_end = bpg_find_nal_end(buf, remaining, !first);
        if (nal_end < 0 || (size_t)nal_end <= s + 1)
            return bpg_set_err(err, BPG_E_FORMAT,
                               "truncated BPG file: malformed NAL unit at byte %zu", pos);
        is_alpha = has_alpha && layer == 1;
        dst = is_alpha ? abuf : cbuf;
        bpg_dynbuf_push(dst, sc, 3);
        if (bpg_dynbuf_push(dst, buf + s, (size_t)nal_end - s) == 0 && is_alpha)
            dst->buf[dst->len - ((size_t)nal_end - s) + 1] &= 0x07; /* layer id 1 -> 0 */
        pos += (size_t)nal_end;
        first = 0;
    }
    if (cbuf->failed || abuf->failed)
        return bpg_set_err(err, BPG_E_NOMEM, "out of memory (HEVC stream)");
    if (!found[0])
        return bpg_set_err(err, BPG_E_FORMAT,
                           "corrupted BPG file: hevc_data holds no colour picture (no first "
                           "slice segment)");
    if (has_alpha && !found[1])
        return bpg_set_err(err, BPG_E_FORMAT,
                           "corrupted BPG file: hevc_data holds no alpha picture");
    return BPG_OK;
}

/* ------------------------------------------------------------- libde265 */

#define PLANE_PADDING 64

/* Fill bytes of the picture buffers (per plane), see decode_stream. */
typedef struct {
    uint8_t byte[3];
} fill_pattern;

static const fill_pattern g_fill[2] = {{{0x01, 0xFE, 0x01}}, {{0xFE, 0x01, 0xFE}}};

/* Picture buffers filled with a pattern (userdata), laid out like libde265's
   default allocator (the sample size is libde265's own bit depth for the
   plane).  The allocation is also the plane's user data, which
   release_buffer frees. */
static int fill_get_buffer(de265_decoder_context *ctx, struct de265_image_spec *spec,
                           struct de265_image *img, void *userdata)
{
    const fill_pattern *fill = (const fill_pattern *)userdata;
    int align = spec->alignment > 0 ? spec->alignment : 16;
    int w = spec->width, h = spec->height, cw, ch, c, k, nplanes = 3;
    (void)ctx;
    (void)userdata;
    if (w <= 0 || h <= 0)
        return 0;
    switch (spec->format) {
    case de265_image_format_mono8:
        nplanes = 1;
        cw = ch = 0;
        break;
    case de265_image_format_YUV420P8:
        cw = (w + 1) / 2;
        ch = (h + 1) / 2;
        break;
    case de265_image_format_YUV422P8:
        cw = (w + 1) / 2;
        ch = h;
        break;
    case de265_image_format_YUV444P8:
        cw = w;
        ch = h;
        break;
    default:
        return 0;
    }
    for (c = 0; c < nplanes; c++) {
        int pw = c ? cw : w, ph = c ? ch : h, bits = de265_get_bits_per_pixel(img, c);
        int bps = (bits + 7) / 8;
        size_t stride = (size_t)(pw + align - 1) / (size_t)align * (size_t)align;
        size_t size;
        void *mem = NULL;
        if (bits < 8 || bits > 16)
            goto fail;
        size = stride * (size_t)bps * (size_t)ph + PLANE_PADDING;
        if (posix_memalign(&mem, 64, size) != 0 || !mem)
            goto fail;
        memset(mem, fill ? fill->byte[c] : 0, size);
        de265_set_image_plane(img, c, mem, (int)(stride * (size_t)bps), mem);
    }
    return 1;
fail:
    for (k = 0; k < c; k++) {
        free(de265_get_image_plane_user_data(img, k));
        de265_set_image_plane(img, k, NULL, 0, NULL);
    }
    return 0;
}

static void fill_release_buffer(de265_decoder_context *ctx, struct de265_image *img,
                                void *userdata)
{
    int c;
    (void)ctx;
    (void)userdata;
    for (c = 0; c < 3; c++)
        free(de265_get_image_plane_user_data(img, c));
}

static struct de265_image_allocation g_fill_alloc = {fill_get_buffer, fill_release_buffer};

static int is_stream_warning(de265_error w)
{
    return w != DE265_OK && w != DE265_WARNING_NO_WPP_CANNOT_USE_MULTITHREADING &&
           w != DE265_WARNING_NUMBER_OF_THREADS_LIMITED_TO_MAXIMUM;
}

typedef struct {
    const uint8_t *p[3];
    int stride[3];  /* bytes */
    int width[3], height[3]; /* decoded (coded) plane sizes */
    int nplanes;
    int hbd;        /* samples are uint16 */
    int maxv;       /* (1 << bit_depth) - 1 */
} dec_planes;

/* Decodes one stream; on success *pctx owns the picture described by planes. */
/* One libde265 run over a stream.  With `fill` (check runs), SAO is disabled
   so that libde265 decodes straight into our pattern-filled buffers, and the
   picture must be one of them. */
static int decode_stream_once(const bpg_dynbuf *stream, const fill_pattern *fill,
                              int chroma_format_idc, int bit_depth, uint32_t width,
                              uint32_t height, const char *what, de265_decoder_context **pctx,
                              dec_planes *planes, char *err)
{
    de265_decoder_context *ctx;
    const struct de265_image *img;
    de265_error e, warn = DE265_OK;
    int more = 1, iter, c, nplanes = chroma_format_idc ? 3 : 1;

    *pctx = NULL;
    ctx = de265_new_decoder();
    if (!ctx)
        return bpg_set_err(err, BPG_E_NOMEM, "libde265: cannot create a decoder");
    de265_set_image_allocation_functions(ctx, &g_fill_alloc, (void *)fill);
    de265_set_parameter_bool(ctx, DE265_DECODER_PARAM_BOOL_SEI_CHECK_HASH, 1);
    de265_set_parameter_bool(ctx, DE265_DECODER_PARAM_SUPPRESS_FAULTY_PICTURES, 1);
    if (fill)
        de265_set_parameter_bool(ctx, DE265_DECODER_PARAM_DISABLE_SAO, 1);

    if (stream->len > 0x7fffffff) {
        de265_free_decoder(ctx);
        return bpg_set_err(err, BPG_E_LIMIT, "HEVC data too large");
    }
    e = de265_push_data(ctx, stream->buf, (int)stream->len, 0, NULL);
    if (!de265_isOK(e))
        goto de265_fail;
    e = de265_flush_data(ctx);
    if (!de265_isOK(e))
        goto de265_fail;
    /* `more` stays set while a picture waits in the output queue: stop once
       every NAL unit has been processed and a picture is available. */
    for (iter = 0; more; iter++) {
        de265_error w;
        if ((size_t)iter > stream->len + 1000) {
            de265_free_decoder(ctx);
            return bpg_set_err(err, BPG_E_FORMAT, "corrupted BPG file: libde265 does not "
                                                  "terminate on the %s stream", what);
        }
        e = de265_decode(ctx, &more);
        while ((w = de265_get_warning(ctx)) != DE265_OK) {
            if (warn == DE265_OK && is_stream_warning(w))
                warn = w;
        }
        if (e == DE265_OK || e == DE265_ERROR_WAITING_FOR_INPUT_DATA) {
            if (de265_get_number_of_NAL_units_pending(ctx) == 0 &&
                de265_get_number_of_input_bytes_pending(ctx) == 0 &&
                de265_peek_next_picture(ctx))
                break;
            continue;
        }
        if (e == DE265_ERROR_IMAGE_BUFFER_FULL && de265_peek_next_picture(ctx))
            break;
        if (e >= 1000) { /* a warning returned directly */
            if (warn == DE265_OK && is_stream_warning(e))
                warn = e;
            continue;
        }
        goto de265_fail;
    }
    if (warn != DE265_OK) {
        de265_free_decoder(ctx);
        return bpg_set_err(err, BPG_E_FORMAT, "corrupted BPG file: %s HEVC stream: %s", what,
                           de265_get_error_text(warn));
    }
    img = de265_peek_next_picture(ctx);
    if (!img) {
        de265_free_decoder(ctx);
        return bpg_set_err(err, BPG_E_FORMAT,
                           "corrupted BPG file: the %s HEVC stream decodes to no picture", what);
    }
    /* geometry checks before any sample is read */
    if ((int)de265_get_chroma_format(img) != chroma_format_idc)
        goto bad_geometry;
    for (c = 0; c < nplanes; c++) {
        int hs = c && (chroma_format_idc == 1 || chroma_format_idc == 2);
        int vs = c && chroma_format_idc == 1;
        uint32_t need_w = (width + (uint32_t)hs) >> hs, need_h = (height + (uint32_t)vs) >> vs;
        int stride = 0, bps = bit_depth > 8 ? 2 : 1;
        planes->p[c] = de265_get_image_plane(img, c, &stride);
        planes->stride[c] = stride;
        /* A check run's picture must live in our pattern-filled buffers:
           libde265 also returns pictures from its own allocator (e.g. internal
           pictures that a damaged stream never decodes), whose memory is
           uninitialised. */
        if (fill && planes->p[c] != (const uint8_t *)de265_get_image_plane_user_data(img, c))
            goto not_decoded;
        if (!planes->p[c] || de265_get_bits_per_pixel(img, c) != bit_depth ||
            de265_get_image_width(img, c) < 0 || de265_get_image_height(img, c) < 0 ||
            (uint32_t)de265_get_image_width(img, c) < need_w ||
            (uint32_t)de265_get_image_height(img, c) < need_h || stride < 0 ||
            (size_t)stride < (size_t)need_w * (size_t)bps)
            goto bad_geometry;
    }
    planes->hbd = bit_depth > 8;
    planes->maxv = (1 << bit_depth) - 1;
    planes->nplanes = nplanes;
    for (c = 0; c < nplanes; c++) {
        planes->width[c] = de265_get_image_width(img, c);
        planes->height[c] = de265_get_image_height(img, c);
    }
    *pctx = ctx;
    return BPG_OK;
not_decoded:
    de265_free_decoder(ctx);
    return bpg_set_err(err, BPG_E_FORMAT,
                       "corrupted BPG file: libde265 returned an undecoded %s picture", what);
bad_geometry:
    de265_free_decoder(ctx);
    return bpg_set_err(err, BPG_E_FORMAT,
                       "corrupted BPG file: the decoded %s picture does not match the header "
                       "(size, chroma format or bit depth)", what);
de265_fail:
    de265_free_decoder(ctx);
    return bpg_set_err(err, BPG_E_FORMAT, "corrupted BPG file: libde265 (%s stream): %s", what,
                       de265_get_error_text(e));
}

/* ------------------------------------------- slice header sanity check */

/* The PPS fields that shape an intra slice segment header. */
typedef struct {
    int valid, parsable;
    int dependent_slice_segments_enabled, output_flag_present, num_extra_slice_header_bits;
    int slice_chroma_qp_offsets_present, deblocking_filter_override_enabled;
    int pps_deblocking_filter_disabled, loop_filter_across_slices_enabled;
    int tiles_enabled, entropy_coding_sync_enabled, slice_segment_header_extension_present;
} pps_info;

/* RBSP of a NAL payload (emulation prevention removed); returns its length. */
static size_t unescape(const uint8_t *src, size_t len, uint8_t *dst)
{
    size_t i, n = 0;
    int zeros = 0;
    for (i = 0; i < len; i++) {
        if (zeros >= 2 && src[i] == 3) {
            zeros = 0;
            continue;
        }
        dst[n++] = src[i];
        zeros = src[i] == 0 ? zeros + 1 : 0;
    }
    return n;
}

static int32_t br_se(bpg_bitreader *br)
{
    uint32_t v = bpg_br_ue(br);
    return (v & 1) ? (int32_t)((v >> 1) + 1) : -(int32_t)(v >> 1);
}

static void parse_pps(const uint8_t *rbsp, size_t len, pps_info *tab)
{
    bpg_bitreader br;
    pps_info p;
    uint32_t id, i, n;
    memset(&p, 0, sizeof(p));
    bpg_br_init(&br, rbsp, len);
    bpg_br_skip(&br, 16);
    id = bpg_br_ue(&br);
    if (br.overread || id > 63)
        return;
    bpg_br_ue(&br); /* pps_seq_parameter_set_id */
    p.dependent_slice_segments_enabled = (int)bpg_br_bits(&br, 1);
    p.output_flag_present = (int)bpg_br_bits(&br, 1);
    p.num_extra_slice_header_bits = (int)bpg_br_bits(&br, 3);
    bpg_br_skip(&br, 2); /* sign_data_hiding, cabac_init_present */
    bpg_br_ue(&br);
    bpg_br_ue(&br);
    br_se(&br); /* init_qp_minus26 */
    bpg_br_skip(&br, 2); /* constrained_intra_pred, transform_skip_enabled */
    if (bpg_br_bits(&br, 1)) /* cu_qp_delta_enabled_flag */
        bpg_br_ue(&br);
    br_se(&br);
    br_se(&br);
    p.slice_chroma_qp_offsets_present = (int)bpg_br_bits(&br, 1);
    bpg_br_skip(&br, 3); /* weighted_pred, weighted_bipred, transquant_bypass */
    p.tiles_enabled = (int)bpg_br_bits(&br, 1);
    p.entropy_coding_sync_enabled = (int)bpg_br_bits(&br, 1);
    if (p.tiles_enabled) {
        uint32_t cols = bpg_br_ue(&br), rows = bpg_br_ue(&br);
        if (br.overread || cols > 64 || rows > 64)
            return;
        if (!bpg_br_bits(&br, 1)) { /* uniform_spacing_flag */
            n = cols + rows;
            for (i = 0; i < n; i++)
                bpg_br_ue(&br);
        }
        bpg_br_skip(&br, 1); /* loop_filter_across_tiles_enabled_flag */
    }
    p.loop_filter_across_slices_enabled = (int)bpg_br_bits(&br, 1);
    if (bpg_br_bits(&br, 1)) { /* deblocking_filter_control_present_flag */
        p.deblocking_filter_override_enabled = (int)bpg_br_bits(&br, 1);
        p.pps_deblocking_filter_disabled = (int)bpg_br_bits(&br, 1);
        if (!p.pps_deblocking_filter_disabled) {
            br_se(&br);
            br_se(&br);
        }
    }
    p.parsable = 1;
    if (bpg_br_bits(&br, 1)) /* pps_scaling_list_data_present_flag: not parsed here */
        p.parsable = 0;
    bpg_br_skip(&br, 1); /* lists_modification_present_flag */
    bpg_br_ue(&br);      /* log2_parallel_merge_level_minus2 */
    p.slice_segment_header_extension_present = (int)bpg_br_bits(&br, 1);
    if (bpg_br_bits(&br, 1)) /* pps_extension_present_flag: may add slice header fields */
        p.parsable = 0;
    if (br.overread)
        return;
    p.valid = 1;
    tab[id] = p;
}

/* Checks that the first slice segment header of the stream's IDR picture is
   complete and followed by slice data: libde265 reads missing header bits as
   zeros and may then "decode" a whole picture from nothing. */
static int check_first_slice(const bpg_dynbuf *stream, const bpg_hevc_header *hh,
                             int chroma_format_idc, const char *what, char *err)
{
    pps_info *pps;
    uint8_t *rbsp = NULL;
    size_t pos = 0;
    int ret = BPG_OK;

    pps = (pps_info *)calloc(64, sizeof(pps_info));
    rbsp = (uint8_t *)malloc(stream->len + 1);
    if (!pps || !rbsp) {
        ret = bpg_set_err(err, BPG_E_NOMEM, "out of memory (slice check)");
        goto done;
    }
    while (pos < stream->len) {
        long end = bpg_find_nal_end(stream->buf + pos, stream->len - pos, 1);
        const uint8_t *nal;
        size_t s, nal_len, n;
        int nut;
        if (end < 0)
            break;
        s = stream->buf[pos + 2] == 1 ? 3 : 4;
        nal = stream->buf + pos + s;
        nal_len = (size_t)end - s;
        pos += (size_t)end;
        nut = (nal[0] >> 1) & 0x3f;
        if (nut == 34) {
            n = unescape(nal, nal_len, rbsp);
            parse_pps(rbsp, n, pps);
        } else if ((nut == 19 || nut == 20) && nal_len > 2 && (nal[2] & 0x80)) {
            bpg_bitreader br;
            const pps_info *p;
            uint32_t id, slice_type, i, nep;
            int sao_luma = 0, sao_chroma = 0, dbk_disabled;
            n = unescape(nal, nal_len, rbsp);
            bpg_br_init(&br, rbsp, n);
            bpg_br_skip(&br, 16 + 1 + 1); /* NAL header, first_slice, no_output_of_prior_pics */
            id = bpg_br_ue(&br);
            if (br.overread || id > 63 || !pps[id].valid) {
                ret = bpg_set_err(err, BPG_E_FORMAT,
                                  "corrupted BPG file: the %s slice refers to a missing PPS",
                                  what);
                goto done;
            }
            p = &pps[id];
            if (!p->parsable)
                goto done; /* PPS features this check does not model */
            bpg_br_skip(&br, (size_t)p->num_extra_slice_header_bits);
            slice_type = bpg_br_ue(&br);
            if (slice_type != 2)
                goto done; /* only intra slices are modelled */
            if (p->output_flag_present)
                bpg_br_skip(&br, 1);
            if (hh->sao) {
                sao_luma = (int)bpg_br_bits(&br, 1);
                if (chroma_format_idc != 0)
                    sao_chroma = (int)bpg_br_bits(&br, 1);
            }
            br_se(&br); /* slice_qp_delta */
            if (p->slice_chroma_qp_offsets_present) {
                br_se(&br);
                br_se(&br);
            }
            dbk_disabled = p->pps_deblocking_filter_disabled;
            if (p->deblocking_filter_override_enabled && bpg_br_bits(&br, 1)) {
                dbk_disabled = (int)bpg_br_bits(&br, 1);
                if (!dbk_disabled) {
                    br_se(&br);
                    br_se(&br);
                }
            }
            if (p->loop_filter_across_slices_enabled && (sao_luma || sao_chroma || !dbk_disabled))
                bpg_br_skip(&br, 1);
            if (p->tiles_enabled || p->entropy_coding_sync_enabled) {
                nep = bpg_br_ue(&br);
                if (!br.overread && nep > 0) {
                    uint32_t bits = bpg_br_ue(&br) + 1;
                    if (br.overread || bits > 32 || nep > (uint32_t)n * 8)
                        goto truncated;
                    for (i = 0; i < nep && !br.overread; i++)
                        bpg_br_bits(&br, (int)bits);
                }
            }
            if (p->slice_segment_header_extension_present) {
                uint32_t ext = bpg_br_ue(&br);
                if (br.overread || ext > 256)
                    goto truncated;
                bpg_br_skip(&br, (size_t)ext * 8);
            }
            if (!bpg_br_bits(&br, 1)) /* byte_alignment(): alignment_bit_equal_to_one */
                goto truncated;
            while (br.pos & 7)
                bpg_br_skip(&br, 1);
            if (br.overread || br.pos / 8 >= n)
                goto truncated; /* header cut, or no slice data after it */
            goto done;
        truncated:
            ret = bpg_set_err(err, BPG_E_FORMAT,
                              "truncated or corrupted BPG file: incomplete %s slice segment "
                              "header", what);
            goto done;
        }
    }
done:
    free(pps);
    free(rbsp);
    return ret;
}

/* True if some luma 8x8 block (and its chroma blocks) still holds the fill
   pattern everywhere, i.e. may never have been written by the decoder. */
static int has_fill_block(const dec_planes *pl, const fill_pattern *fill, int chroma_format_idc)
{
    int hs = chroma_format_idc == 1 || chroma_format_idc == 2, vs = chroma_format_idc == 1;
    int bx, by, c, x, y;
    for (by = 0; by + 8 <= pl->height[0]; by += 8) {
        for (bx = 0; bx + 8 <= pl->width[0]; bx += 8) {
            int all = 1;
            for (c = 0; c < pl->nplanes && all; c++) {
                int x0 = c ? bx >> hs : bx, y0 = c ? by >> vs : by;
                int bw = c ? 8 >> hs : 8, bh = c ? 8 >> vs : 8;
                unsigned v = fill->byte[c];
                if (pl->hbd)
                    v = v * 257u;
                for (y = y0; y < y0 + bh && all; y++) {
                    const uint8_t *row = pl->p[c] + (size_t)y * (size_t)pl->stride[c];
                    for (x = x0; x < x0 + bw; x++) {
                        unsigned s = pl->hbd ? ((const uint16_t *)row)[x] : row[x];
                        if (s != v) {
                            all = 0;
                            break;
                        }
                    }
                }
            }
            if (all)
                return 1;
        }
    }
    return 0;
}

static int same_planes(const dec_planes *a, const dec_planes *b)
{
    int c, y;
    for (c = 0; c < a->nplanes; c++) {
        size_t n = (size_t)a->width[c] * (a->hbd ? 2 : 1);
        if (a->width[c] != b->width[c] || a->height[c] != b->height[c])
            return 0;
        for (y = 0; y < a->height[c]; y++) {
            if (memcmp(a->p[c] + (size_t)y * (size_t)a->stride[c],
                       b->p[c] + (size_t)y * (size_t)b->stride[c], n) != 0)
                return 0;
        }
    }
    return 1;
}

/* Decodes one stream into *pctx / planes and makes sure the whole picture
   was decoded.  libde265 silently stops at a slice that ends early (e.g. a
   truncated file) and leaves the rest of the picture as it found the memory;
   with SAO enabled it even decodes into buffers of its own allocator
   (uninitialised).  So a check run with SAO disabled decodes into our buffers
   filled with a pattern; blocks still showing it trigger a second check run
   with the complementary pattern, and any difference means that part of the
   picture was never decoded.  When the stream uses SAO, the picture itself
   then comes from a normal run (same slices, so the same coverage). */
static int decode_stream(const bpg_dynbuf *stream, const bpg_hevc_header *hh,
                         int chroma_format_idc, int bit_depth, uint32_t width, uint32_t height,
                         const char *what, de265_decoder_context **pctx, dec_planes *planes,
                         char *err)
{
    de265_decoder_context *ctx2 = NULL;
    dec_planes planes2;
    int ret, same;

    *pctx = NULL;
    ret = decode_stream_once(stream, &g_fill[0], chroma_format_idc, bit_depth, width, height,
                             what, pctx, planes, err);
    if (ret == BPG_OK)
        ret = check_first_slice(stream, hh, chroma_format_idc, what, err);
    if (ret == BPG_OK && has_fill_block(planes, &g_fill[0], chroma_format_idc)) {
        memset(&planes2, 0, sizeof(planes2));
        ret = decode_stream_once(stream, &g_fill[1], chroma_format_idc, bit_depth, width,
                                 height, what, &ctx2, &planes2, err);
        if (ret == BPG_OK) {
            same = same_planes(planes, &planes2);
            de265_free_decoder(ctx2);
            if (!same)
                ret = bpg_set_err(err, BPG_E_FORMAT,
                                  "truncated or corrupted BPG file: part of the %s picture is "
                                  "missing from the HEVC data", what);
        }
    }
    if (ret != BPG_OK || !hh->sao) {
        if (ret != BPG_OK && *pctx) {
            de265_free_decoder(*pctx);
            *pctx = NULL;
        }
        return ret; /* without SAO the check run's picture is the picture */
    }
    de265_free_decoder(*pctx);
    *pctx = NULL;
    memset(planes, 0, sizeof(*planes));
    return decode_stream_once(stream, NULL, chroma_format_idc, bit_depth, width, height, what,
                              pctx, planes, err);
}

/* ------------------------------------------------- output conversion */

typedef struct {
    int c_shift, c_rnd, c_one, y_one, y_offset;
    int c_r_cr, c_g_cb, c_g_cr, c_b_cb, c_center;
    int bit_depth, limited_range;
} dec_cvt;

/* libbpg convert_init for 8-bit output. */
static void dec_convert_init(dec_cvt *s, int bit_depth, int color_space, int limited_range)
{
    const int c_shift = 30 - 8;
    double k_r = 0.299, k_b = 0.114, mult, mult_y, mult_c;
    int in_pixel_max = (1 << bit_depth) - 1;

    memset(s, 0, sizeof(*s));
    mult = 255.0 * (1 << c_shift) / (double)in_pixel_max;
    if (limited_range) {
        mult_y = 255.0 * (1 << c_shift) / (double)(219 << (bit_depth - 8));
        mult_c = 255.0 * (1 << c_shift) / (double)(224 << (bit_depth - 8));
    } else {
        mult_y = mult;
        mult_c = mult;
    }
    if (color_space == BPG_CS_BT709) {
        k_r = 0.2126;
        k_b = 0.0722;
    } else if (color_space == BPG_CS_BT2020) {
        k_r = 0.2627;
        k_b = 0.0593;
    }
    if (color_space == BPG_CS_YCBCR || color_space == BPG_CS_BT709 ||
        color_space == BPG_CS_BT2020) {
        s->c_r_cr = (int)lrint(2 * (1 - k_r) * mult_c);
        s->c_g_cb = (int)lrint(2 * k_b * (1 - k_b) / (1 - k_b - k_r) * mult_c);
        s->c_g_cr = (int)lrint(2 * k_r * (1 - k_r) / (1 - k_b - k_r) * mult_c);
        s->c_b_cb = (int)lrint(2 * (1 - k_b) * mult_c);
    }
    s->c_one = (int)lrint(mult);
    s->c_shift = c_shift;
    s->c_rnd = 1 << (c_shift - 1);
    s->c_center = 1 << (bit_depth - 1);
    if (limited_range) {
        s->y_one = (int)lrint(mult_y);
        s->y_offset = -(16 << (bit_depth - 8)) * s->y_one + s->c_rnd;
    } else {
        s->y_one = s->c_one;
        s->y_offset = s->c_rnd;
    }
    s->bit_depth = bit_depth;
    s->limited_range = limited_range;
}

static void load_row(const dec_planes *pl, int c, int y, int n, int32_t *dst)
{
    const uint8_t *row = pl->p[c] + (size_t)y * (size_t)pl->stride[c];
    int x;
    if (pl->hbd) {
        /* libde265 may leave out-of-range values in a damaged picture; libbpg's
           arithmetic assumes samples within the bit depth */
        const uint16_t *r16 = (const uint16_t *)row;
        for (x = 0; x < n; x++)
            dst[x] = r16[x] > pl->maxv ? pl->maxv : r16[x];
    } else {
        for (x = 0; x < n; x++)
            dst[x] = row[x];
    }
}

/* 7-tap half-phase interpolator (IP1): forward taps for even outputs. */
static const int IP1[7] = {2, -6, 18, 57, -10, 4, -1};
static const int IP1R[7] = {-1, 4, -10, 57, 18, -6, 2};
/* 8-tap co-sited interpolator (IP0) for the odd outputs. */
static const int IP0[8] = {-1, 4, -11, 40, 40, -11, 4, -1};

/* Horizontal x2 interpolation of n2 = ceil(w/2) samples t[] to w outputs
   (indices clamped to the real chroma width).  For 4:2:0 the input is the
   vertical filter's intermediate (scale 2^6), for 4:2:2 plain samples. */
static void interp_h(int32_t *out, const int32_t *t, int w, int phase, int bit_depth, int is_420)
{
    int n2 = (w + 1) / 2, i, k, pixel_max = (1 << bit_depth) - 1;
    int shift1 = is_420 ? 20 - bit_depth : 6;
    int off1 = 1 << (shift1 - 1);
    int shift0 = 14 - bit_depth, off0 = (1 << shift0) >> 1;
    for (i = 0; i < n2; i++) {
        int a[8], s0 = 0, s1 = 0;
        if (phase) {
            for (k = 0; k < 7; k++)
                a[k] = t[clampi(i - 3 + k, 0, n2 - 1)];
            for (k = 0; k < 7; k++) {
                s0 += IP1[k] * a[k];
                s1 += IP1R[k] * a[k];
            }
            out[2 * i] = clampi((s0 + off1) >> shift1, 0, pixel_max);
            if (2 * i + 1 < w)
                out[2 * i + 1] = clampi((s1 + off1) >> shift1, 0, pixel_max);
        } else {
            if (is_420)
                out[2 * i] = clampi((t[i] + off0) >> shift0, 0, pixel_max);
            else
                out[2 * i] = t[i];
            if (2 * i + 1 < w) {
                for (k = 0; k < 8; k++)
                    s1 += IP0[k] * t[clampi(i - 3 + k, 0, n2 - 1)];
                out[2 * i + 1] = clampi((s1 + off1) >> shift1, 0, pixel_max);
            }
        }
    }
}

/* Output row y of chroma plane c at full resolution into out[w]. */
static void chroma_row(const dec_planes *pl, const bpg_info *info, int c, int y, int32_t *out,
                       int32_t *rows, int32_t *tmp)
{
    int w = (int)info->width, h = (int)info->height, n2 = (w + 1) / 2, h2 = (h + 1) / 2;
    int bd = info->bit_depth, phase = !info->mpeg2_siting, x, k;
    if (info->chroma_format_idc == 3) {
        load_row(pl, c, y, w, out);
    } else if (info->chroma_format_idc == 2) {
        load_row(pl, c, y, n2, tmp);
        interp_h(out, tmp, w, phase, bd, 0);
    } else {
        int y2 = y >> 1, shift = bd - 8, rnd = (1 << shift) >> 1;
        const int *taps = (y & 1) ? IP1R : IP1;
        for (x = 0; x < n2; x++)
            tmp[x] = 0;
        for (k = 0; k < 7; k++) {
            load_row(pl, c, clampi(y2 - 3 + k, 0, h2 - 1), n2, rows);
            for (x = 0; x < n2; x++)
                tmp[x] += taps[k] * rows[x];
        }
        for (x = 0; x < n2; x++)
            tmp[x] = (tmp[x] + rnd) >> shift; /* int16_t in libbpg; always in range */
        interp_h(out, tmp, w, phase, bd, 1);
    }
}

int bpg_decode(const uint8_t *data, size_t len, int channels, uint8_t *dst, size_t dst_size,
               uint32_t max_pixels, bpg_info *info_out, char *err)
{
    bpg_info info;
    bpg_dynbuf cstream, astream;
    de265_decoder_context *cctx = NULL, *actx_dec = NULL;
    dec_planes cpl, apl;
    dec_cvt cvt;
    int32_t *ybuf = NULL, *cbbuf = NULL, *crbuf = NULL, *abuf = NULL, *rows = NULL, *tmp = NULL;
    uint32_t div_table[256];
    int ret, w, h, y, x, extra_plane, gray, dpb_m1;

    ret = bpg_parse_header(data, len, max_pixels, &info, err);
    if (info_out)
        *info_out = info;
    if (ret)
        return ret;
    if (channels < 1 || channels > 4)
        return bpg_set_err(err, BPG_E_ARG, "output channels must be 1, 2, 3 or 4, got %d",
                           channels);
    gray = info.pixel_format == BPG_PF_GRAY;
    if (channels <= 2 && !gray)
        return bpg_set_err(err, BPG_E_ARG,
                           "%d-channel output is only available for grayscale BPG files",
                           channels);
    w = (int)info.width;
    h = (int)info.height;
    if (!dst || dst_size / (size_t)channels / (size_t)w < (size_t)h)
        return bpg_set_err(err, BPG_E_ARG, "output buffer too small for %dx%dx%d", w, h,
                           channels);

    pthread_once(&g_de265_once, de265_global_init);
    if (!g_de265_ok)
        return bpg_set_err(err, BPG_E_CODEC, "libde265 initialisation failed");

    extra_plane = info.has_alpha || info.has_w_plane;
    dpb_m1 = info.has_animation ? 1 : 0;
    bpg_dynbuf_init(&cstream);
    bpg_dynbuf_init(&astream);
    memset(&cpl, 0, sizeof(cpl));
    memset(&apl, 0, sizeof(apl));

    if (push_vps_sps(&cstream, &info.colour_header, info.chroma_format_idc, info.bit_depth,
                     info.width, info.height, dpb_m1) < 0 ||
        (extra_plane && push_vps_sps(&astream, &info.alpha_header, 0, info.bit_depth,
                                     info.width, info.height, dpb_m1) < 0)) {
        ret = bpg_set_err(err, BPG_E_NOMEM, "out of memory (parameter sets)");
        goto done;
    }
    ret = collect_first_au(data, &info, &cstream, &astream, err);
    if (ret)
        goto done;
    ret = decode_stream(&cstream, &info.colour_header, info.chroma_format_idc, info.bit_depth,
                        info.width, info.height, "colour", &cctx, &cpl, err);
    if (ret)
        goto done;
    if (extra_plane) {
        ret = decode_stream(&astream, &info.alpha_header, 0, info.bit_depth, info.width,
                            info.height, "alpha", &actx_dec, &apl, err);
        if (ret)
            goto done;
    }
    bpg_dynbuf_free(&cstream);
    bpg_dynbuf_free(&astream);

    ybuf = (int32_t *)malloc((size_t)w * sizeof(int32_t));
    cbbuf = (int32_t *)malloc((size_t)w * sizeof(int32_t));
    crbuf = (int32_t *)malloc((size_t)w * sizeof(int32_t));
    abuf = (int32_t *)malloc((size_t)w * sizeof(int32_t));
    rows = (int32_t *)malloc(((size_t)w / 2 + 1) * sizeof(int32_t));
    tmp = (int32_t *)malloc(((size_t)w / 2 + 1) * sizeof(int32_t));
    if (!ybuf || !cbbuf || !crbuf || !abuf || !rows || !tmp) {
        ret = bpg_set_err(err, BPG_E_NOMEM, "out of memory (line buffers)");
        goto done;
    }
    for (x = 1; x < 256; x++)
        div_table[x] = (uint32_t)(((255 << 16) + (x / 2) + 128) / x);
    div_table[0] = 0;

    dec_convert_init(&cvt, info.bit_depth, info.color_space, info.limited_range);
    for (y = 0; y < h; y++) {
        uint8_t *q = dst + (size_t)y * (size_t)w * (size_t)channels;
        int64_t y_one = cvt.y_one, yoff = cvt.y_offset;
        int sh = cvt.c_shift, center = cvt.c_center;
        int direct = info.bit_depth == 8 && !info.limited_range;

        load_row(&cpl, 0, y, w, ybuf);
        if (gray) {
            for (x = 0; x < w; x++) {
                uint8_t v = direct ? (uint8_t)ybuf[x] : clamp8((ybuf[x] * y_one + yoff) >> sh);
                if (channels >= 3) {
                    q[x * channels] = q[x * channels + 1] = q[x * channels + 2] = v;
                } else {
                    q[x * channels] = v;
                }
            }
        } else {
            chroma_row(&cpl, &info, 1, y, cbbuf, rows, tmp);
            chroma_row(&cpl, &info, 2, y, crbuf, rows, tmp);
            for (x = 0; x < w; x++) {
                uint8_t *o = q + (size_t)x * channels;
                int64_t yv = ybuf[x], cb = cbbuf[x], cr = crbuf[x];
                switch (info.color_space) {
                case BPG_CS_RGB:
                    if (direct) {
                        o[0] = (uint8_t)cr;
                        o[1] = (uint8_t)yv;
                        o[2] = (uint8_t)cb;
                    } else {
                        o[0] = clamp8((cr * y_one + yoff) >> sh);
                        o[1] = clamp8((yv * y_one + yoff) >> sh);
                        o[2] = clamp8((cb * y_one + yoff) >> sh);
                    }
                    break;
                case BPG_CS_YCGCO:
                    cb -= center;
                    cr -= center;
                    o[0] = clamp8(((yv - cb + cr) * y_one + yoff) >> sh);
                    o[1] = clamp8(((yv + cb) * y_one + yoff) >> sh);
                    o[2] = clamp8(((yv - cb - cr) * y_one + yoff) >> sh);
                    break;
                default: {
                    int64_t yy = yv * y_one;
                    cb -= center;
                    cr -= center;
                    o[0] = clamp8((yy + cvt.c_r_cr * cr + yoff) >> sh);
                    o[1] = clamp8((yy - cvt.c_g_cb * cb - cvt.c_g_cr * cr + yoff) >> sh);
                    o[2] = clamp8((yy + cvt.c_b_cb * cb + yoff) >> sh);
                    break;
                }
                }
            }
        }

        /* alpha / W plane */
        if (info.has_w_plane) {
            int shift = info.bit_depth, rnd = 1 << (shift - 1), k;
            load_row(&apl, 0, y, w, abuf);
            for (x = 0; x < w; x++) {
                uint8_t *o = q + (size_t)x * channels;
                for (k = 0; k < 3; k++)
                    o[k] = (uint8_t)((o[k] * abuf[x] + rnd) >> shift);
                if (channels == 4)
                    o[3] = 255;
            }
        } else if (channels == 2 || channels == 4) {
            int ac = channels - 1, nc = channels - 1, k;
            if (info.has_alpha) {
                load_row(&apl, 0, y, w, abuf);
                for (x = 0; x < w; x++) {
                    uint8_t *o = q + (size_t)x * channels;
                    unsigned a = info.bit_depth == 8
                                     ? (unsigned)abuf[x]
                                     : (unsigned)(((int64_t)abuf[x] * cvt.c_one + cvt.c_rnd) >>
                                                  cvt.c_shift);
                    o[ac] = (uint8_t)a;
                    if (info.premultiplied_alpha) { /* alpha_divide8 */
                        for (k = 0; k < nc; k++) {
                            if (a == 0)
                                o[k] = 255;
                            else if (o[k] >= a)
                                o[k] = 255;
                            else
                                o[k] = (uint8_t)((o[k] * div_table[a] + (1u << 15)) >> 16);
                        }
                    }
                }
            } else {
                for (x = 0; x < w; x++)
                    q[(size_t)x * channels + ac] = 255;
            }
        }
    }
    ret = BPG_OK;
done:
    if (cctx)
        de265_free_decoder(cctx);
    if (actx_dec)
        de265_free_decoder(actx_dec);
    bpg_dynbuf_free(&cstream);
    bpg_dynbuf_free(&astream);
    free(ybuf);
    free(cbbuf);
    free(crbuf);
    free(abuf);
    free(rows);
    free(tmp);
    return ret;
}
