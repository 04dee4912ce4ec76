/*
 * outpost_link.c - outpost-link v1, see PROTOCOL.md. The header documents the public API; the
 * comments here say why the code is shaped the way it is.
 */
#include "outpost_link.h"

#include <string.h>

/* float values travel as their bit pattern; that needs a 32-bit IEEE float, which every target
 * this library is meant for (AVR, ARM Cortex-M, ESP32, x86/ARM hosts) has. */
typedef char ol_float_is_binary32[(sizeof(float) == 4 && sizeof(uint32_t) == 4) ? 1 : -1];

/* Lengths are returned as int, which may be 16 bits on AVR. Frames are never near this, and
 * clamping the caller's capacity keeps every returned length representable. */
#define OL_SIZE_LIMIT 32767u

enum { RX_IDLE = 0, RX_IN_FRAME = 1, RX_DISCARD = 2 };

/** Folds one byte into a running CRC-16/CCITT-FALSE. Bitwise rather than table-driven: 512
 *  bytes of table would cost more flash on an 8-bit part than the cycles are worth at UART rates. */
static uint16_t crc_step(uint16_t crc, uint8_t byte)
{
    int i;
    crc = (uint16_t)(crc ^ (uint16_t)((uint16_t)byte << 8));
    for (i = 0; i < 8; i++) {
        if (crc & 0x8000u) crc = (uint16_t)((unsigned)(crc << 1) ^ 0x1021u);
        else crc = (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t ol_crc16(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFFu;
    size_t i;
    for (i = 0; i < len; i++) crc = crc_step(crc, data[i]);
    return crc;
}

/** Clamps a caller's capacity so lengths stay representable as a 16-bit int. */
static size_t clamp_cap(size_t cap)
{
    return cap > OL_SIZE_LIMIT ? OL_SIZE_LIMIT : cap;
}

int ol_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    size_t code_at = 0; /* where the current block's code byte goes, filled when it closes */
    size_t o = 1;
    size_t i;
    uint8_t code = 1;

    cap = clamp_cap(cap);
    if (cap < 1) return OL_ERR_NOSPACE;
    for (i = 0; i < len; i++) {
        if (src[i] != 0) {
            if (o >= cap) return OL_ERR_NOSPACE;
            dst[o++] = src[i];
            code++;
            if (code != 0xFF) continue;
            /* A full block implies no zero after it. If the input ends here, stop: a trailing
             * empty 0x01 block would only cost a byte and would push a 254-byte frame to 256. */
            dst[code_at] = code;
            if (i + 1 == len) return (int)o;
        } else {
            dst[code_at] = code;
        }
        code = 1;
        if (o >= cap) return OL_ERR_NOSPACE;
        code_at = o++;
    }
    dst[code_at] = code;
    return (int)o;
}

int ol_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    /* Output never overtakes input (each block's code byte is consumed before the zero it stands
     * for is written), so dst == src works without a temporary. */
    size_t i = 0;
    size_t o = 0;

    cap = clamp_cap(cap);
    while (i < len) {
        uint8_t code = src[i++];
        size_t n;
        if (code == 0) return OL_ERR_COBS;
        n = (size_t)code - 1u;
        if (n > len - i) return OL_ERR_COBS;
        if (n > cap - o) return OL_ERR_NOSPACE;
        while (n--) {
            uint8_t b = src[i++];
            if (b == 0) return OL_ERR_COBS;
            dst[o++] = b;
        }
        if (code != 0xFF && i < len) {
            if (o >= cap) return OL_ERR_NOSPACE;
            dst[o++] = 0;
        }
    }
    return (int)o;
}

/** Accepts well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF)
 *  without U+0000. Strings become MQTT topics and C strings on the other side, and MQTT forbids
 *  both ill-formed UTF-8 and U+0000 there, so the link refuses them at the source. */
static bool utf8_ok(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        uint8_t lo = 0x80, hi = 0xBF;
        size_t need, k;
        if (c == 0) return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0; /* overlong */
            if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90; /* overlong */
            if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
        } else {
            return false;
        }
        if (n - i - 1 < need) return false;
        if (p[i + 1] < lo || p[i + 1] > hi) return false;
        for (k = 2; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
        }
        i += need + 1;
    }
    return true;
}

/* ---- building ------------------------------------------------------------------------------ */

/** Appends raw bytes to a frame under construction. The decoded frame is assembled at out[1..]
 *  so that sealing can COBS-encode it in place: one 256-byte buffer per device, not two. */
static void w_put(ol_data_builder *w, const uint8_t *p, size_t n)
{
    if (w->status != OL_OK || n == 0) return;
    if (n > OL_FRAME_MAX - OL_CRC_LEN - w->len) {
        w->status = OL_ERR_TOO_LONG;
        return;
    }
    /* code byte + frame + CRC + delimiter */
    if (1u + w->len + n + OL_CRC_LEN + 1u > w->cap) {
        w->status = OL_ERR_NOSPACE;
        return;
    }
    memcpy(w->out + 1 + w->len, p, n);
    w->len += n;
}

/** Appends one byte to a frame under construction. */
static void w_u8(ol_data_builder *w, uint8_t v)
{
    w_put(w, &v, 1);
}

/** Appends a 32-bit value big-endian, whatever the host's byte order. */
static void w_u32(ol_data_builder *w, uint32_t v)
{
    uint8_t b[4];
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
    w_put(w, b, 4);
}

/** Appends a u8-length-prefixed UTF-8 string; NULL counts as "". `nonempty` is for identifiers
 *  (device id, field and command names) that the gateway turns into topic levels. */
static void w_str8(ol_data_builder *w, const char *s, bool nonempty)
{
    size_t n = s ? strlen(s) : 0;
    if (w->status != OL_OK) return;
    if (n > 255 || (nonempty && n == 0) || !utf8_ok((const uint8_t *)s, n)) {
        w->status = OL_ERR_ARG;
        return;
    }
    w_u8(w, (uint8_t)n);
    w_put(w, (const uint8_t *)s, n);
}

/** Starts a frame: header at out[1..3]. */
static void w_begin(ol_data_builder *w, uint8_t *out, size_t cap, uint8_t type, uint8_t seq)
{
    w->out = out;
    w->cap = clamp_cap(out ? cap : 0);
    w->len = 0;
    w->status = OL_OK;
    w_u8(w, OL_PROTOCOL_VERSION);
    w_u8(w, type);
    w_u8(w, seq);
}

/** Seals a frame: CRC big-endian, then COBS in place, then the delimiter. For 1..254 bytes COBS
 *  is exactly "one code byte in front, every zero replaced by the distance to the next zero (or
 *  to the end)", so a single backward pass over the buffer encodes it. */
static int w_finish(ol_data_builder *w)
{
    uint16_t crc;
    size_t next, i, n;
    if (w->status != OL_OK) return w->status;
    /* w_put already reserved room for the CRC and delimiter. */
    crc = ol_crc16(w->out + 1, w->len);
    w->out[1 + w->len] = (uint8_t)(crc >> 8);
    w->out[2 + w->len] = (uint8_t)crc;
    n = w->len + OL_CRC_LEN;
    next = n + 1; /* the delimiter's position: the end the last block points at */
    for (i = n; i >= 1; i--) {
        if (w->out[i] == 0) {
            w->out[i] = (uint8_t)(next - i);
            next = i;
        }
    }
    w->out[0] = (uint8_t)next;
    w->out[n + 1] = 0;
    return (int)(n + 2);
}

int ol_build_frame(uint8_t *out, size_t cap, uint8_t type, uint8_t seq, const uint8_t *body,
                   size_t body_len)
{
    ol_data_builder w;
    if (body == NULL && body_len > 0) return OL_ERR_ARG;
    w_begin(&w, out, cap, type, seq);
    w_put(&w, body, body_len);
    return w_finish(&w);
}

int ol_build_hello(uint8_t *out, size_t cap, uint8_t seq, const char *device_id,
                   const char *firmware, const ol_field_def *fields, uint8_t count)
{
    ol_data_builder w;
    uint8_t seen[32]; /* one bit per field id: duplicates would make DATA ambiguous */
    uint8_t i;

    if (device_id == NULL || (fields == NULL && count > 0)) return OL_ERR_ARG;
    memset(seen, 0, sizeof seen);
    w_begin(&w, out, cap, OL_TYPE_HELLO, seq);
    w_str8(&w, device_id, true);
    w_str8(&w, firmware, false);
    w_u8(&w, count);
    for (i = 0; i < count && w.status == OL_OK; i++) {
        const ol_field_def *f = &fields[i];
        uint8_t bit = (uint8_t)(1u << (f->id & 7u));
        if (f->type < OL_INT32 || f->type > OL_UINT32 || f->name == NULL ||
            (seen[f->id >> 3] & bit)) {
            return OL_ERR_ARG;
        }
        seen[f->id >> 3] |= bit;
        w_u8(&w, f->id);
        w_u8(&w, f->type);
        w_str8(&w, f->name, true);
        w_str8(&w, f->unit, false);
    }
    return w_finish(&w);
}

int ol_build_cmd(uint8_t *out, size_t cap, uint8_t seq, const char *name, const uint8_t *args,
                 size_t args_len)
{
    ol_data_builder w;
    if (name == NULL || (args == NULL && args_len > 0)) return OL_ERR_ARG;
    w_begin(&w, out, cap, OL_TYPE_CMD, seq);
    w_str8(&w, name, true);
    w_put(&w, args, args_len);
    return w_finish(&w);
}

int ol_build_ack(uint8_t *out, size_t cap, uint8_t seq, uint8_t cmd_seq)
{
    ol_data_builder w;
    w_begin(&w, out, cap, OL_TYPE_ACK, seq);
    w_u8(&w, cmd_seq);
    return w_finish(&w);
}

int ol_build_nak(uint8_t *out, size_t cap, uint8_t seq, uint8_t cmd_seq, uint8_t code,
                 const char *message)
{
    ol_data_builder w;
    size_t n = message ? strlen(message) : 0;
    if (!utf8_ok((const uint8_t *)message, n)) return OL_ERR_ARG;
    w_begin(&w, out, cap, OL_TYPE_NAK, seq);
    w_u8(&w, cmd_seq);
    w_u8(&w, code);
    w_put(&w, (const uint8_t *)message, n); /* the rest of the body: no length byte needed */
    return w_finish(&w);
}

int ol_build_ping(uint8_t *out, size_t cap, uint8_t seq)
{
    ol_data_builder w;
    w_begin(&w, out, cap, OL_TYPE_PING, seq);
    return w_finish(&w);
}

void ol_data_begin(ol_data_builder *b, uint8_t *out, size_t cap, uint8_t seq)
{
    w_begin(b, out, cap, OL_TYPE_DATA, seq);
}

int ol_data_int32(ol_data_builder *b, uint8_t id, int32_t value)
{
    /* Two's complement by conversion, not by memcpy, so the byte order is the wire's. */
    w_u8(b, id);
    w_u8(b, OL_INT32);
    w_u32(b, (uint32_t)value);
    return b->status;
}

int ol_data_uint32(ol_data_builder *b, uint8_t id, uint32_t value)
{
    w_u8(b, id);
    w_u8(b, OL_UINT32);
    w_u32(b, value);
    return b->status;
}

int ol_data_float32(ol_data_builder *b, uint8_t id, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits); /* the one portable way to get at the bits */
    w_u8(b, id);
    w_u8(b, OL_FLOAT32);
    w_u32(b, bits);
    return b->status;
}

int ol_data_bool(ol_data_builder *b, uint8_t id, bool value)
{
    w_u8(b, id);
    w_u8(b, OL_BOOL);
    w_u8(b, value ? 1u : 0u);
    return b->status;
}

int ol_data_string(ol_data_builder *b, uint8_t id, const char *value)
{
    w_u8(b, id);
    w_u8(b, OL_STRING);
    w_str8(b, value, false);
    return b->status;
}

int ol_data_finish(ol_data_builder *b)
{
    return w_finish(b);
}

/* ---- parsing ------------------------------------------------------------------------------- */

/** Reads one byte from an iterator; false at the end. */
static bool r_u8(ol_iter *r, uint8_t *v)
{
    if (r->pos >= r->end) return false;
    *v = *r->pos++;
    return true;
}

/** Reads a big-endian 32-bit value; false if fewer than 4 bytes remain. */
static bool r_u32(ol_iter *r, uint32_t *v)
{
    if (r->end - r->pos < 4) return false;
    *v = ((uint32_t)r->pos[0] << 24) | ((uint32_t)r->pos[1] << 16) | ((uint32_t)r->pos[2] << 8) |
         (uint32_t)r->pos[3];
    r->pos += 4;
    return true;
}

/** Reads a u8-length-prefixed string and checks it is UTF-8 (and non-empty if asked). */
static bool r_str8(ol_iter *r, ol_str *s, bool nonempty)
{
    uint8_t n;
    if (!r_u8(r, &n) || r->end - r->pos < (ptrdiff_t)n) return false;
    if ((nonempty && n == 0) || !utf8_ok(r->pos, n)) return false;
    s->ptr = (const char *)r->pos;
    s->len = n;
    r->pos += n;
    return true;
}

/** Reads one {field id, value type, value} of a DATA body. The same code validates in ol_parse
 *  and reads in ol_next_value, so the two cannot disagree about what a value is. */
static bool r_value(ol_iter *r, ol_value *v)
{
    uint8_t b;
    uint32_t u;
    if (!r_u8(r, &v->id) || !r_u8(r, &v->type)) return false;
    switch (v->type) {
    case OL_INT32:
        if (!r_u32(r, &u)) return false;
        /* Unsigned to signed is implementation-defined in C99 for values above INT32_MAX, so the
         * sign is restored arithmetically. */
        v->as.i32 = (u & 0x80000000u) ? (int32_t)(u - 0x80000000u) - INT32_MAX - 1 : (int32_t)u;
        return true;
    case OL_UINT32:
        return r_u32(r, &v->as.u32);
    case OL_FLOAT32:
        if (!r_u32(r, &u)) return false;
        memcpy(&v->as.f32, &u, sizeof u);
        return true;
    case OL_BOOL:
        if (!r_u8(r, &b) || b > 1) return false; /* one spelling per value keeps re-encoding exact */
        v->as.b = b == 1;
        return true;
    case OL_STRING:
        return r_str8(r, &v->as.s, false);
    default:
        return false; /* an unknown type has an unknown length: nothing after it can be read */
    }
}

/** Reads one field declaration of a HELLO body. */
static bool r_field(ol_iter *r, ol_field_info *f)
{
    if (!r_u8(r, &f->id) || !r_u8(r, &f->type)) return false;
    if (f->type < OL_INT32 || f->type > OL_UINT32) return false;
    return r_str8(r, &f->name, true) && r_str8(r, &f->unit, false);
}

/** Validates a HELLO body and fills out->u.hello. */
static bool parse_hello(ol_iter r, ol_frame *out)
{
    uint8_t seen[32];
    uint8_t i;
    ol_field_info f;
    memset(seen, 0, sizeof seen);
    if (!r_str8(&r, &out->u.hello.device_id, true) || !r_str8(&r, &out->u.hello.firmware, false) ||
        !r_u8(&r, &out->u.hello.field_count)) {
        return false;
    }
    out->u.hello.fields = r;
    for (i = 0; i < out->u.hello.field_count; i++) {
        uint8_t bit;
        if (!r_field(&r, &f)) return false;
        bit = (uint8_t)(1u << (f.id & 7u));
        if (seen[f.id >> 3] & bit) return false;
        seen[f.id >> 3] |= bit;
    }
    out->u.hello.fields.end = r.pos; /* == r.end, checked next */
    return r.pos == r.end;
}

/** Validates a DATA body and fills out->u.data. */
static bool parse_data(ol_iter r, ol_frame *out)
{
    ol_value v;
    uint8_t count = 0; /* at most 83 values fit (3 bytes each at the least) */
    out->u.data.values = r;
    while (r.pos < r.end) {
        if (!r_value(&r, &v)) return false;
        count++;
    }
    out->u.data.value_count = count;
    return true;
}

int ol_parse(const uint8_t *frame, size_t len, ol_frame *out)
{
    ol_iter r;
    uint16_t crc;
    bool ok = false;

    if (len < OL_FRAME_MIN) return OL_ERR_MALFORMED;
    if (len > OL_FRAME_MAX) return OL_ERR_TOO_LONG;
    crc = (uint16_t)(((uint16_t)frame[len - 2] << 8) | frame[len - 1]);
    if (ol_crc16(frame, len - OL_CRC_LEN) != crc) return OL_ERR_CRC;
    /* Version before type: a v2 frame may use type numbers differently. */
    if (frame[0] != OL_PROTOCOL_VERSION) return OL_ERR_VERSION;
    if (frame[1] < OL_TYPE_HELLO || frame[1] > OL_TYPE_PING) return OL_ERR_TYPE;

    memset(out, 0, sizeof *out);
    out->version = frame[0];
    out->type = frame[1];
    out->seq = frame[2];
    out->body = frame + OL_HEADER_LEN;
    out->body_len = (uint8_t)(len - OL_FRAME_MIN);
    r.pos = out->body;
    r.end = out->body + out->body_len;

    switch (out->type) {
    case OL_TYPE_HELLO:
        ok = parse_hello(r, out);
        break;
    case OL_TYPE_DATA:
        ok = parse_data(r, out);
        break;
    case OL_TYPE_CMD:
        ok = r_str8(&r, &out->u.cmd.name, true);
        out->u.cmd.args = r.pos;
        out->u.cmd.args_len = (uint8_t)(r.end - r.pos);
        break;
    case OL_TYPE_ACK:
        ok = r_u8(&r, &out->u.ack.cmd_seq) && r.pos == r.end;
        break;
    case OL_TYPE_NAK:
        ok = r_u8(&r, &out->u.nak.cmd_seq) && r_u8(&r, &out->u.nak.code) &&
             utf8_ok(r.pos, (size_t)(r.end - r.pos));
        out->u.nak.message.ptr = (const char *)r.pos;
        out->u.nak.message.len = (uint8_t)(r.end - r.pos);
        break;
    case OL_TYPE_PING:
        ok = out->body_len == 0;
        break;
    default:
        break;
    }
    return ok ? OL_OK : OL_ERR_MALFORMED;
}

bool ol_next_field(ol_iter *it, ol_field_info *out)
{
    return it->pos < it->end && r_field(it, out);
}

bool ol_next_value(ol_iter *it, ol_value *out)
{
    return it->pos < it->end && r_value(it, out);
}

bool ol_cmd_is(const ol_frame *f, const char *name)
{
    size_t n = strlen(name);
    return f->type == OL_TYPE_CMD && f->u.cmd.name.len == n &&
           memcmp(f->u.cmd.name.ptr, name, n) == 0;
}

/* ---- receiving ----------------------------------------------------------------------------- */

void ol_rx_init(ol_rx *rx, uint8_t *buf, size_t cap)
{
    memset(rx, 0, sizeof *rx);
    rx->buf = buf;
    rx->cap = buf ? cap : 0;
    rx->state = RX_IDLE;
}

/** Stores one decoded byte, or reports that the frame outgrew its limit. */
static bool rx_store(ol_rx *rx, uint8_t b)
{
    size_t limit = rx->cap < OL_FRAME_MAX ? rx->cap : OL_FRAME_MAX;
    if (rx->len >= limit) return false;
    rx->buf[rx->len++] = b;
    return true;
}

int ol_rx_push(ol_rx *rx, uint8_t byte)
{
    /* COBS is decoded as bytes arrive rather than buffered and decoded at the delimiter: the
     * buffer then only needs the decoded size, and an overlong frame is caught at the byte that
     * overflows it, not 256 bytes later. */
    if (byte == 0) {
        uint8_t was = rx->state;
        rx->state = RX_IDLE;
        if (was != RX_IN_FRAME) return OL_RX_NONE; /* idle fill, or the end of a discarded frame */
        if (rx->left != 0) return OL_ERR_COBS;
        {
            int r = ol_parse(rx->buf, rx->len, &rx->frame);
            return r == OL_OK ? OL_RX_FRAME : r;
        }
    }
    switch (rx->state) {
    case RX_IDLE:
        rx->len = 0;
        rx->code = byte;
        rx->left = (uint8_t)(byte - 1);
        rx->state = RX_IN_FRAME;
        return OL_RX_NONE;
    case RX_IN_FRAME:
        if (rx->left == 0) {
            /* A new block begins, so the previous one stood for a zero, unless it was full. */
            if (rx->code != 0xFF && !rx_store(rx, 0)) break;
            rx->code = byte;
            rx->left = (uint8_t)(byte - 1);
            return OL_RX_NONE;
        }
        if (!rx_store(rx, byte)) break;
        rx->left--;
        return OL_RX_NONE;
    default: /* RX_DISCARD: wait for the delimiter */
        return OL_RX_NONE;
    }
    rx->state = RX_DISCARD;
    return OL_ERR_TOO_LONG;
}

const char *ol_status_name(int status)
{
    switch (status) {
    case OL_OK: return "ok";
    case OL_RX_FRAME: return "frame";
    case OL_ERR_COBS: return "cobs";
    case OL_ERR_TOO_LONG: return "too_long";
    case OL_ERR_CRC: return "crc";
    case OL_ERR_VERSION: return "version";
    case OL_ERR_TYPE: return "type";
    case OL_ERR_MALFORMED: return "malformed";
    case OL_ERR_NOSPACE: return "nospace";
    case OL_ERR_ARG: return "arg";
    default: return "unknown";
    }
}
