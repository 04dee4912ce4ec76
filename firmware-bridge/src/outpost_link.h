/*
 * outpost_link.h - the device side of outpost-link v1, the serial framing between a
 * microcontroller and an Outpost gateway. PROTOCOL.md beside this directory is the specification;
 * this header only restates what a caller needs.
 *
 * C99, freestanding-friendly: no malloc, no stdio, only <stdint.h>, <stddef.h>, <stdbool.h> and
 * <string.h>. Every buffer is the caller's, so RAM use is visible at the call site: one
 * OL_WIRE_MAX (256) byte buffer is enough to build any frame, one OL_FRAME_MAX (254) byte buffer
 * is enough to receive any frame. Not thread- or interrupt-safe: keep one receiver per UART and
 * feed it from one context.
 */
#ifndef OUTPOST_LINK_H
#define OUTPOST_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* Arduino sketches are C++; the library is compiled as C. */
#endif

#define OL_PROTOCOL_VERSION 1u
/* Decoded frame: 3 header bytes + body + 2 CRC bytes. */
#define OL_HEADER_LEN 3u
#define OL_CRC_LEN 2u
#define OL_FRAME_MIN 5u   /* header + CRC, empty body */
#define OL_FRAME_MAX 254u /* keeps every frame in one COBS block group: wire = decoded + 2 */
#define OL_BODY_MAX (OL_FRAME_MAX - OL_FRAME_MIN) /* 249 */
/* On the wire: COBS adds exactly one byte to a frame of 1..254 bytes, then the 0x00 delimiter. */
#define OL_WIRE_MIN (OL_FRAME_MIN + 2u) /* 7 */
#define OL_WIRE_MAX (OL_FRAME_MAX + 2u) /* 256 */
/* Upper bound of ol_cobs_encode's output for n input bytes, for any n. */
#define OL_COBS_ENCODED_MAX(n) ((n) + 1u + (n) / 254u)

/* Frame types (the byte after the version). */
enum ol_type {
    OL_TYPE_HELLO = 0x01, /* device -> gateway: who I am and what I measure */
    OL_TYPE_DATA = 0x02,  /* device -> gateway: readings */
    OL_TYPE_CMD = 0x03,   /* gateway -> device: do something */
    OL_TYPE_ACK = 0x04,   /* device -> gateway: CMD done */
    OL_TYPE_NAK = 0x05,   /* device -> gateway: CMD refused or failed */
    OL_TYPE_PING = 0x06   /* device -> gateway: still here */
};

/* Value types, used in HELLO field declarations and before every DATA value. */
enum ol_value_type {
    OL_INT32 = 0x01,   /* i32, big-endian two's complement */
    OL_FLOAT32 = 0x02, /* IEEE 754 binary32, big-endian */
    OL_BOOL = 0x03,    /* one byte, 0 or 1 */
    OL_STRING = 0x04,  /* u8 length + UTF-8 */
    OL_UINT32 = 0x05   /* u32, big-endian */
};

/* NAK codes defined by the protocol; 0x80..0xFF are the application's. */
enum ol_nak_code {
    OL_NAK_UNKNOWN_COMMAND = 0x01,
    OL_NAK_BAD_ARGS = 0x02,
    OL_NAK_BUSY = 0x03,
    OL_NAK_FAILED = 0x04
};

/*
 * Results. Builders return a length (> 0) or a negative code; ol_rx_push returns OL_RX_NONE,
 * OL_RX_FRAME or a negative code. OL_ERR_COBS..OL_ERR_MALFORMED are the six receive errors of
 * PROTOCOL.md; ol_status_name gives their spelling in the vectors.
 */
enum ol_status {
    OL_OK = 0,
    OL_RX_NONE = 0,        /* ol_rx_push: no complete frame yet */
    OL_RX_FRAME = 1,       /* ol_rx_push: rx->frame holds a valid frame */
    OL_ERR_COBS = -1,      /* a COBS block runs past the delimiter */
    OL_ERR_TOO_LONG = -2,  /* more than OL_FRAME_MAX decoded bytes (or more than the rx buffer) */
    OL_ERR_CRC = -3,       /* CRC mismatch */
    OL_ERR_VERSION = -4,   /* version byte is not 1 */
    OL_ERR_TYPE = -5,      /* type byte is not 1..6 */
    OL_ERR_MALFORMED = -6, /* shorter than OL_FRAME_MIN, or the body does not parse */
    OL_ERR_NOSPACE = -7,   /* builder: the caller's output buffer is too small */
    OL_ERR_ARG = -8        /* builder: an argument cannot be encoded (NULL, >255 bytes, bad UTF-8) */
};

/* A length-prefixed string inside a received frame: NOT NUL-terminated (print with %.*s). */
typedef struct {
    const char *ptr;
    uint8_t len;
} ol_str;

/* A field declaration to send in HELLO. unit may be NULL or "" for none. */
typedef struct {
    uint8_t id;
    uint8_t type; /* enum ol_value_type */
    const char *name;
    const char *unit;
} ol_field_def;

/* A field declaration read from a received HELLO. */
typedef struct {
    uint8_t id;
    uint8_t type;
    ol_str name;
    ol_str unit;
} ol_field_info;

/* One value read from a received DATA frame; `type` says which member of `as` is set. */
typedef struct {
    uint8_t id;
    uint8_t type;
    union {
        int32_t i32;
        uint32_t u32;
        float f32;
        bool b;
        ol_str s;
    } as;
} ol_value;

/* Walks the fields of a HELLO or the values of a DATA frame that ol_parse already validated. */
typedef struct {
    const uint8_t *pos;
    const uint8_t *end;
} ol_iter;

/* A parsed frame. Every pointer points into the buffer that was parsed: keep it alive. */
typedef struct {
    uint8_t version;
    uint8_t type; /* enum ol_type */
    uint8_t seq;
    const uint8_t *body;
    uint8_t body_len;
    union {
        struct {
            ol_str device_id;
            ol_str firmware;
            uint8_t field_count;
            ol_iter fields; /* for ol_next_field */
        } hello;
        struct {
            uint8_t value_count;
            ol_iter values; /* for ol_next_value */
        } data;
        struct {
            ol_str name;
            const uint8_t *args;
            uint8_t args_len;
        } cmd;
        struct {
            uint8_t cmd_seq;
        } ack;
        struct {
            uint8_t cmd_seq;
            uint8_t code;
            ol_str message;
        } nak;
    } u;
} ol_frame;

/* Incremental receiver. Fields are readable; change them only through ol_rx_*. */
typedef struct {
    uint8_t *buf;     /* caller's buffer, decoded bytes of the current frame */
    size_t cap;       /* frames longer than min(cap, OL_FRAME_MAX) are OL_ERR_TOO_LONG */
    size_t len;       /* decoded bytes so far; after OL_RX_FRAME, the frame's length */
    uint8_t state;    /* private: idle, in frame, discarding */
    uint8_t code;     /* private: code byte of the current COBS block */
    uint8_t left;     /* private: data bytes still due in the current block */
    ol_frame frame;   /* after OL_RX_FRAME: the parsed frame, pointing into buf */
} ol_rx;

/** CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, unreflected, xorout 0) of `len` bytes.
 *  ol_crc16("123456789", 9) == 0x29B1. */
uint16_t ol_crc16(const uint8_t *data, size_t len);

/** COBS-encodes `len` bytes of `src` into `dst` (no delimiter appended). A trailing full block
 *  of 254 non-zero bytes gets no extra 0x01 code (PROTOCOL.md, "COBS"). `dst` must not overlap
 *  `src`. Returns the encoded length, or OL_ERR_NOSPACE if it would exceed `cap`
 *  (OL_COBS_ENCODED_MAX(len) is always enough). */
int ol_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap);

/** COBS-decodes `len` bytes of one frame (delimiter excluded) from `src` into `dst`; `dst` may
 *  equal `src` for in-place decoding. Returns the decoded length, OL_ERR_COBS if a 0x00 byte
 *  appears or a block runs past the end, or OL_ERR_NOSPACE if the result exceeds `cap`. */
int ol_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap);

/** Builds a complete wire frame (COBS + 0x00 delimiter) of `type` with `seq` and the given raw
 *  body bytes into `out`. The typed builders below are thin wrappers; use this one for a body
 *  you assembled yourself (it is not validated). Returns the wire length, OL_ERR_TOO_LONG if the
 *  frame would exceed OL_FRAME_MAX, or OL_ERR_NOSPACE if `cap` is too small. */
int ol_build_frame(uint8_t *out, size_t cap, uint8_t type, uint8_t seq, const uint8_t *body,
                   size_t body_len);

/** Builds a HELLO wire frame: `device_id` (non-empty), `firmware` (NULL or "" for none), then
 *  `count` field declarations with unique ids. Returns the wire length, or OL_ERR_ARG,
 *  OL_ERR_TOO_LONG, OL_ERR_NOSPACE. */
int ol_build_hello(uint8_t *out, size_t cap, uint8_t seq, const char *device_id,
                   const char *firmware, const ol_field_def *fields, uint8_t count);

/** Builds a CMD wire frame (gateway -> device; the library builds it for tests and tools):
 *  `name` (non-empty) then `args_len` argument bytes. Returns the wire length or an error. */
int ol_build_cmd(uint8_t *out, size_t cap, uint8_t seq, const char *name, const uint8_t *args,
                 size_t args_len);

/** Builds an ACK wire frame answering the CMD whose seq was `cmd_seq`. Returns the wire length
 *  or OL_ERR_NOSPACE. */
int ol_build_ack(uint8_t *out, size_t cap, uint8_t seq, uint8_t cmd_seq);

/** Builds a NAK wire frame answering the CMD `cmd_seq` with `code` (enum ol_nak_code or an
 *  application code 0x80..0xFF) and an optional UTF-8 `message` (NULL for none). Returns the
 *  wire length or an error. */
int ol_build_nak(uint8_t *out, size_t cap, uint8_t seq, uint8_t cmd_seq, uint8_t code,
                 const char *message);

/** Builds a PING wire frame (empty body). Returns the wire length or OL_ERR_NOSPACE. */
int ol_build_ping(uint8_t *out, size_t cap, uint8_t seq);

/* DATA is built value by value straight into the output buffer; errors are sticky, so a caller
 * may check only the result of ol_data_finish. */
typedef struct {
    uint8_t *out;
    size_t cap;
    size_t len;  /* decoded bytes so far, stored from out[1] on */
    int status;  /* OL_OK or the first error */
} ol_data_builder;

/** Starts a DATA frame with `seq` in `out` (OL_WIRE_MAX bytes hold any frame). Nothing is
 *  valid on the wire until ol_data_finish. */
void ol_data_begin(ol_data_builder *b, uint8_t *out, size_t cap, uint8_t seq);

/** Appends an int32 value for field `id`. Returns OL_OK or the builder's (sticky) error. */
int ol_data_int32(ol_data_builder *b, uint8_t id, int32_t value);

/** Appends a uint32 value for field `id`. Returns OL_OK or the builder's (sticky) error. */
int ol_data_uint32(ol_data_builder *b, uint8_t id, uint32_t value);

/** Appends a float32 value for field `id`, bit for bit (NaN payloads included). Returns OL_OK
 *  or the builder's (sticky) error. */
int ol_data_float32(ol_data_builder *b, uint8_t id, float value);

/** Appends a bool value (sent as 0 or 1) for field `id`. Returns OL_OK or the sticky error. */
int ol_data_bool(ol_data_builder *b, uint8_t id, bool value);

/** Appends a string value (UTF-8, at most 255 bytes, NULL taken as "") for field `id`.
 *  Returns OL_OK or the builder's (sticky) error. */
int ol_data_string(ol_data_builder *b, uint8_t id, const char *value);

/** Seals the DATA frame: appends the CRC, COBS-encodes in place and adds the delimiter.
 *  Returns the wire length to send from `out`, or the first error any call hit. */
int ol_data_finish(ol_data_builder *b);

/** Checks and parses one decoded frame (CRC included) in the order PROTOCOL.md gives: length,
 *  CRC, version, type, body. On OL_OK, `*out` describes the frame with pointers into `frame`.
 *  Returns OL_OK, OL_ERR_MALFORMED, OL_ERR_CRC, OL_ERR_VERSION, OL_ERR_TYPE, or
 *  OL_ERR_TOO_LONG for more than OL_FRAME_MAX bytes. */
int ol_parse(const uint8_t *frame, size_t len, ol_frame *out);

/** Reads the next field declaration of a parsed HELLO (start with frame.u.hello.fields).
 *  Returns false after the last one. */
bool ol_next_field(ol_iter *it, ol_field_info *out);

/** Reads the next value of a parsed DATA frame (start with frame.u.data.values). Returns false
 *  after the last one. */
bool ol_next_value(ol_iter *it, ol_value *out);

/** True if `f` is a CMD whose name equals the NUL-terminated `name`. */
bool ol_cmd_is(const ol_frame *f, const char *name);

/** Prepares `rx` to receive into the caller's `buf` of `cap` bytes (OL_FRAME_MAX for any
 *  frame; a smaller buffer makes longer frames OL_ERR_TOO_LONG, which suits small devices that
 *  only expect short commands). */
void ol_rx_init(ol_rx *rx, uint8_t *buf, size_t cap);

/** Feeds one received byte. Returns OL_RX_NONE while a frame is incomplete; OL_RX_FRAME when a
 *  0x00 delimiter completed a valid frame, which is then in rx->frame (and rx->buf, rx->len)
 *  until the next call; or a negative receive error (OL_ERR_COBS..OL_ERR_MALFORMED), reported
 *  once per bad frame. Nothing to do after an error: the receiver resumes by itself at the next
 *  delimiter (OL_ERR_TOO_LONG comes mid-frame; the rest of that frame is skipped silently). */
int ol_rx_push(ol_rx *rx, uint8_t byte);

/** Returns a short constant name for a status code ("cobs", "too_long", "crc", ...), the
 *  spelling PROTOCOL.md and the vectors use for receive errors. */
const char *ol_status_name(int status);

#ifdef __cplusplus
}
#endif

#endif /* OUTPOST_LINK_H */
