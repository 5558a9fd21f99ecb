/* Internal helpers shared by the BPG encoder and decoder (not a public API). */
#ifndef TFCOMP_BPG_COMMON_H
#define TFCOMP_BPG_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "bpg.h"

#define BPG_MAGIC 0x425047FBu
/* libbpg caps every ue7 length at 2^30 - 1. */
#define BPG_MAX_DATA_LEN ((1u << 30) - 1)

#if defined(__GNUC__)
#define BPG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define BPG_PRINTF(a, b)
#endif

/* Writes a message into err (if non-NULL) and returns code. */
int bpg_set_err(char *err, int code, const char *fmt, ...) BPG_PRINTF(3, 4);

/* ---- growable byte buffer ---- */
typedef struct {
    uint8_t *buf;
    size_t len, size;
    int failed; /* set when an allocation failed; further pushes are ignored */
} bpg_dynbuf;

void bpg_dynbuf_init(bpg_dynbuf *b);
void bpg_dynbuf_free(bpg_dynbuf *b);
int bpg_dynbuf_reserve(bpg_dynbuf *b, size_t extra);
int bpg_dynbuf_push(bpg_dynbuf *b, const uint8_t *data, size_t len);
int bpg_dynbuf_byte(bpg_dynbuf *b, uint8_t v);

/* ---- ue7 (big-endian base 128) ---- */
/* Reads a ue7 of at most 5 bytes into *v (<= 0xFFFFFFFF), rejecting a leading
   0x80.  Returns the byte count, or -1 (truncated), -2 (non canonical),
   -3 (more than 5 bytes / more than 32 bits). */
int bpg_get_ue7(const uint8_t *buf, size_t len, uint32_t *v);
/* Writes v as ue7 into p (at most 5 bytes); returns the byte count. */
int bpg_put_ue7(uint8_t *p, uint32_t v);

/* ---- bit reader (MSB first) that flags reads past the end ---- */
typedef struct {
    const uint8_t *buf;
    size_t len;     /* bytes */
    size_t pos;     /* bit position */
    int overread;   /* set when a read went past the end (bits read as 0) */
} bpg_bitreader;

void bpg_br_init(bpg_bitreader *br, const uint8_t *buf, size_t len);
uint32_t bpg_br_bits(bpg_bitreader *br, int n); /* 0 <= n <= 32 */
void bpg_br_skip(bpg_bitreader *br, size_t n);
/* Exp-Golomb ue(v); values needing more than 31 leading zeros set overread
   and return UINT32_MAX. */
uint32_t bpg_br_ue(bpg_bitreader *br);

/* ---- bit writer ---- */
typedef struct {
    uint8_t *buf;
    size_t cap;     /* bytes */
    size_t pos;     /* bit position */
    int overflow;
} bpg_bitwriter;

void bpg_bw_init(bpg_bitwriter *bw, uint8_t *buf, size_t cap); /* zeroes buf */
void bpg_bw_bits(bpg_bitwriter *bw, int n, uint32_t v);
void bpg_bw_ue(bpg_bitwriter *bw, uint32_t v);
/* rbsp_trailing_bits: a 1 then zeros to the byte boundary. */
void bpg_bw_trailing(bpg_bitwriter *bw);
size_t bpg_bw_bytes(const bpg_bitwriter *bw);

/* ---- NAL units ---- */
/* libbpg's find_nal_end: the end (exclusive) of the NAL starting at buf
   (which starts with a 3- or 4-byte start code if has_startcode), i.e. the
   position of the next 00 00 01 / 00 00 00 01 or len; -1 if malformed. */
long bpg_find_nal_end(const uint8_t *buf, size_t len, int has_startcode);

/* ---- compact hevc_header ---- */
/* Writes the bit-field of a compact header (without its ue7 length) into
   buf (cap bytes); returns the byte count or -1. */
/* The PCM fields (present when h->pcm) as they appear in the compact header and the SPS. */
void bpg_write_pcm_fields(bpg_bitwriter *bw, const bpg_hevc_header *h);
/* sps_extension_present_flag and, when set, the range-extension flags (header and SPS alike). */
void bpg_write_sps_extension(bpg_bitwriter *bw, const bpg_hevc_header *h);
int bpg_write_hevc_header_bits(const bpg_hevc_header *h, uint8_t *buf, size_t cap);

#endif
