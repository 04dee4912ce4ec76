/*
 * test_link.c - host tests for outpost_link.c: every golden vector in both directions, the
 * receiver under splits, truncation, inserted delimiters and noise, and seeded random round
 * trips. Built with ASan/UBSan by the Makefile; output buffers are heap-allocated at their exact
 * size so an overrun of the caller's `cap` is a sanitizer error, not a silent pass.
 *
 * Usage: test_link [path/to/frames.json]
 */
#include "../src/outpost_link.h"
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_cases_passed, g_cases_failed;
static int g_case_failures; /* failed checks in the running case */
static const char *g_case = "";

/** Reports a failed check with the current case's name; keeps going so one run shows all. */
static void failf(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    g_case_failures++;
    fprintf(stderr, "FAIL [%s] %s:%d: ", g_case, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) failf(__FILE__, __LINE__, __VA_ARGS__);                                    \
    } while (0)

/** Opens a named case; the counters are per case so the summary stays readable. */
static void case_begin(const char *name)
{
    g_case = name;
    g_case_failures = 0;
}

/** Closes the running case and counts it as passed or failed. */
static void case_end(void)
{
    if (g_case_failures) g_cases_failed++;
    else g_cases_passed++;
}

/* ---- small helpers ------------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n;
} bytes;

/** Decodes a hex string into a new heap buffer (at least one byte allocated). */
static bytes unhex(const char *hex)
{
    bytes b;
    size_t i, n = hex ? strlen(hex) / 2 : 0;
    b.p = malloc(n ? n : 1);
    if (!b.p) abort();
    b.n = n;
    for (i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) abort();
        b.p[i] = (uint8_t)v;
    }
    return b;
}

/** xorshift32: the tests' only randomness, seeded, so a failure replays exactly. */
static uint32_t g_rng = 0x5eed1234u;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

/** A random integer in [0, n). */
static uint32_t rnd_below(uint32_t n)
{
    return n ? rnd() % n : 0;
}

/** Heap copy of exactly n bytes, so ASan flags any write past them. */
static uint8_t *exact_buf(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    if (!p) abort();
    memset(p, 0xAA, n ? n : 1);
    return p;
}

/** Compares an ol_str with a NUL-terminated expected string. */
static bool str_eq(ol_str s, const char *want)
{
    return want && strlen(want) == s.len && memcmp(s.ptr, want, s.len) == 0;
}

static const char *const TYPE_NAMES[] = {"", "hello", "data", "cmd", "ack", "nak", "ping"};
static const char *const VALUE_TYPE_NAMES[] = {"", "int32", "float32", "bool", "string", "uint32"};

/** Maps a vector's type name to its byte, 0 if unknown. */
static uint8_t type_code(const char *name, const char *const *names)
{
    uint8_t i;
    for (i = 1; i <= (names == TYPE_NAMES ? 6 : 5); i++) {
        if (name && strcmp(name, names[i]) == 0) return i;
    }
    return 0;
}

/* Events a receiver produced for one input, for comparing with what the vectors expect. */
typedef struct {
    int kind[64];        /* OL_RX_FRAME or a negative error */
    uint8_t frame[64][OL_FRAME_MAX];
    size_t frame_len[64];
    size_t n;
    size_t overflow;     /* events that did not fit */
} events;

/** Feeds bytes one at a time, as a UART interrupt would, and records every event. */
static void feed(ol_rx *rx, const uint8_t *p, size_t n, events *ev)
{
    size_t i;
    for (i = 0; i < n; i++) {
        int r = ol_rx_push(rx, p[i]);
        if (r == OL_RX_NONE) continue;
        if (ev->n == 64) {
            ev->overflow++;
            continue;
        }
        ev->kind[ev->n] = r;
        if (r == OL_RX_FRAME) {
            memcpy(ev->frame[ev->n], rx->buf, rx->len);
            ev->frame_len[ev->n] = rx->len;
        }
        ev->n++;
    }
}

/* ---- vector checks --------------------------------------------------------------------------- */

/** Checks one parsed DATA value against its JSON form (and the JSON form against itself: a
 *  float's `value` must be what its `bits` say). */
static void check_value(const ol_value *v, const jval *jv)
{
    const jval *val = json_get(jv, "value");
    const jval *id = json_get(jv, "id");
    uint8_t t = type_code(json_str(jv, "type"), VALUE_TYPE_NAMES);
    CHECK(id && v->id == (uint8_t)id->num, "value id %u", v->id);
    CHECK(v->type == t, "value type %u, want %u", v->type, t);
    if (!val || v->type != t) return;
    switch (t) {
    case OL_INT32:
        CHECK(val->t == J_NUM && (double)v->as.i32 == val->num, "int32 %ld vs %.17g",
              (long)v->as.i32, val->num);
        break;
    case OL_UINT32:
        CHECK(val->t == J_NUM && (double)v->as.u32 == val->num, "uint32 %lu vs %.17g",
              (unsigned long)v->as.u32, val->num);
        break;
    case OL_BOOL:
        CHECK(val->t == J_BOOL && v->as.b == val->b, "bool");
        break;
    case OL_STRING:
        CHECK(val->t == J_STR && str_eq(v->as.s, val->str), "string value");
        break;
    case OL_FLOAT32: {
        uint32_t got, want;
        const char *bits = json_str(jv, "bits");
        float f = v->as.f32;
        memcpy(&got, &f, sizeof got);
        CHECK(bits && sscanf(bits, "%8x", &want) == 1 && got == want, "float bits %08lx vs %s",
              (unsigned long)got, bits ? bits : "?");
        if (val->t == J_STR) {
            if (strcmp(val->str, "NaN") == 0) CHECK(isnan(f), "NaN");
            else if (strcmp(val->str, "Infinity") == 0) CHECK(isinf(f) && f > 0, "+Inf");
            else if (strcmp(val->str, "-Infinity") == 0) CHECK(isinf(f) && f < 0, "-Inf");
            else CHECK(0, "unknown float spelling %s", val->str);
        } else {
            float want_f = (float)val->num;
            CHECK(val->t == J_NUM && memcmp(&want_f, &f, 4) == 0, "float %.9g vs %.17g",
                  (double)f, val->num);
        }
        break;
    }
    default:
        break;
    }
}

/** Checks a parsed frame against a good vector's `frame` object. */
static void check_parsed(const ol_frame *f, const jval *jf)
{
    const jval *body = json_get(jf, "body");
    const jval *seq = json_get(jf, "seq");
    const jval *ver = json_get(jf, "version");
    uint8_t t = type_code(json_str(jf, "type"), TYPE_NAMES);
    size_t i;

    CHECK(ver && f->version == (uint8_t)ver->num, "version");
    CHECK(f->type == t, "type %u, want %u", f->type, t);
    CHECK(seq && f->seq == (uint8_t)seq->num, "seq %u", f->seq);
    if (!body || f->type != t) return;

    switch (t) {
    case OL_TYPE_HELLO: {
        const jval *fields = json_get(body, "fields");
        ol_iter it = f->u.hello.fields;
        ol_field_info fi;
        CHECK(str_eq(f->u.hello.device_id, json_str(body, "deviceId")), "deviceId");
        CHECK(str_eq(f->u.hello.firmware, json_str(body, "firmware")), "firmware");
        CHECK(fields && f->u.hello.field_count == fields->n, "field count %u",
              f->u.hello.field_count);
        for (i = 0; fields && i < fields->n; i++) {
            const jval *jfi = fields->items[i];
            const jval *id = json_get(jfi, "id");
            bool got = ol_next_field(&it, &fi);
            CHECK(got, "field %zu missing", i);
            if (!got) break;
            CHECK(id && fi.id == (uint8_t)id->num, "field id");
            CHECK(fi.type == type_code(json_str(jfi, "type"), VALUE_TYPE_NAMES), "field type");
            CHECK(str_eq(fi.name, json_str(jfi, "name")), "field name");
            CHECK(str_eq(fi.unit, json_str(jfi, "unit")), "field unit");
        }
        CHECK(!ol_next_field(&it, &fi), "extra field");
        break;
    }
    case OL_TYPE_DATA: {
        const jval *values = json_get(body, "values");
        ol_iter it = f->u.data.values;
        ol_value v;
        CHECK(values && f->u.data.value_count == values->n, "value count %u",
              f->u.data.value_count);
        for (i = 0; values && i < values->n; i++) {
            bool got = ol_next_value(&it, &v);
            CHECK(got, "value %zu missing", i);
            if (!got) break;
            check_value(&v, values->items[i]);
        }
        CHECK(!ol_next_value(&it, &v), "extra value");
        break;
    }
    case OL_TYPE_CMD: {
        bytes args = unhex(json_str(body, "argsHex"));
        CHECK(str_eq(f->u.cmd.name, json_str(body, "name")), "cmd name");
        CHECK(ol_cmd_is(f, json_str(body, "name")), "ol_cmd_is");
        CHECK(f->u.cmd.args_len == args.n &&
                  (args.n == 0 || memcmp(f->u.cmd.args, args.p, args.n) == 0),
              "cmd args");
        free(args.p);
        break;
    }
    case OL_TYPE_ACK: {
        const jval *cs = json_get(body, "cmdSeq");
        CHECK(cs && f->u.ack.cmd_seq == (uint8_t)cs->num, "ack cmdSeq");
        break;
    }
    case OL_TYPE_NAK: {
        const jval *cs = json_get(body, "cmdSeq");
        const jval *code = json_get(body, "code");
        CHECK(cs && f->u.nak.cmd_seq == (uint8_t)cs->num, "nak cmdSeq");
        CHECK(code && f->u.nak.code == (uint8_t)code->num, "nak code");
        CHECK(str_eq(f->u.nak.message, json_str(body, "message")), "nak message");
        break;
    }
    case OL_TYPE_PING:
        CHECK(f->body_len == 0, "ping body");
        break;
    default:
        break;
    }
}

/** Builds the wire frame a good vector describes, through the public builders, into `out`. */
static int build_from_json(const jval *jf, uint8_t *out, size_t cap)
{
    const jval *body = json_get(jf, "body");
    const jval *seqv = json_get(jf, "seq");
    uint8_t seq = seqv ? (uint8_t)seqv->num : 0;
    size_t i;

    switch (type_code(json_str(jf, "type"), TYPE_NAMES)) {
    case OL_TYPE_HELLO: {
        const jval *fields = json_get(body, "fields");
        ol_field_def defs[64];
        for (i = 0; i < fields->n && i < 64; i++) {
            const jval *jfi = fields->items[i];
            defs[i].id = (uint8_t)json_get(jfi, "id")->num;
            defs[i].type = type_code(json_str(jfi, "type"), VALUE_TYPE_NAMES);
            defs[i].name = json_str(jfi, "name");
            defs[i].unit = json_str(jfi, "unit");
        }
        return ol_build_hello(out, cap, seq, json_str(body, "deviceId"), json_str(body, "firmware"),
                              defs, (uint8_t)fields->n);
    }
    case OL_TYPE_DATA: {
        const jval *values = json_get(body, "values");
        ol_data_builder b;
        ol_data_begin(&b, out, cap, seq);
        for (i = 0; i < values->n; i++) {
            const jval *jv = values->items[i];
            const jval *val = json_get(jv, "value");
            uint8_t id = (uint8_t)json_get(jv, "id")->num;
            switch (type_code(json_str(jv, "type"), VALUE_TYPE_NAMES)) {
            case OL_INT32: ol_data_int32(&b, id, (int32_t)val->num); break;
            case OL_UINT32: ol_data_uint32(&b, id, (uint32_t)val->num); break;
            case OL_BOOL: ol_data_bool(&b, id, val->b); break;
            case OL_STRING: ol_data_string(&b, id, val->str); break;
            case OL_FLOAT32: {
                unsigned bits = 0;
                uint32_t u;
                float f;
                sscanf(json_str(jv, "bits"), "%8x", &bits);
                u = (uint32_t)bits;
                memcpy(&f, &u, sizeof f);
                ol_data_float32(&b, id, f);
                break;
            }
            default: return OL_ERR_ARG;
            }
        }
        return ol_data_finish(&b);
    }
    case OL_TYPE_CMD: {
        bytes args = unhex(json_str(body, "argsHex"));
        int r = ol_build_cmd(out, cap, seq, json_str(body, "name"), args.p, args.n);
        free(args.p);
        return r;
    }
    case OL_TYPE_ACK:
        return ol_build_ack(out, cap, seq, (uint8_t)json_get(body, "cmdSeq")->num);
    case OL_TYPE_NAK:
        return ol_build_nak(out, cap, seq, (uint8_t)json_get(body, "cmdSeq")->num,
                            (uint8_t)json_get(body, "code")->num, json_str(body, "message"));
    case OL_TYPE_PING:
        return ol_build_ping(out, cap, seq);
    default:
        return OL_ERR_ARG;
    }
}

/** One good vector: COBS both ways, receiver byte by byte, parse, re-encode at exact size. */
static void test_good_vector(const jval *g)
{
    const char *name = json_str(g, "name");
    const jval *jf = json_get(g, "frame");
    bytes wire = unhex(json_str(g, "wireHex"));
    bytes dec = unhex(json_str(g, "decodedHex"));
    uint8_t buf[OL_FRAME_MAX];
    uint8_t enc[OL_WIRE_MAX + 8];
    ol_rx rx;
    ol_frame f;
    events *ev = calloc(1, sizeof *ev);
    int r;

    case_begin(name);
    CHECK(wire.n >= OL_WIRE_MIN && wire.n <= OL_WIRE_MAX && wire.n == dec.n + 2,
          "wire length %zu for %zu decoded bytes", wire.n, dec.n);
    CHECK(wire.p[wire.n - 1] == 0 && memchr(wire.p, 0, wire.n - 1) == NULL, "delimiter placement");

    /* CRC: big-endian over everything before it. */
    CHECK(ol_crc16(dec.p, dec.n - 2) == (uint16_t)((dec.p[dec.n - 2] << 8) | dec.p[dec.n - 1]),
          "crc");

    /* COBS on its own, both directions. */
    r = ol_cobs_decode(wire.p, wire.n - 1, buf, sizeof buf);
    CHECK(r == (int)dec.n && memcmp(buf, dec.p, dec.n) == 0, "cobs decode (%d)", r);
    r = ol_cobs_encode(dec.p, dec.n, enc, sizeof enc);
    CHECK(r == (int)wire.n - 1 && memcmp(enc, wire.p, wire.n - 1) == 0, "cobs encode (%d)", r);

    /* The receiver, byte by byte: exactly one frame, on the delimiter. */
    ol_rx_init(&rx, buf, sizeof buf);
    feed(&rx, wire.p, wire.n - 1, ev);
    CHECK(ev->n == 0, "event before the delimiter");
    r = ol_rx_push(&rx, 0);
    CHECK(r == OL_RX_FRAME, "rx: %s", ol_status_name(r));
    if (r == OL_RX_FRAME) {
        CHECK(rx.len == dec.n && memcmp(rx.buf, dec.p, dec.n) == 0, "rx bytes");
        check_parsed(&rx.frame, jf);
    }

    /* The parser on the decoded bytes directly. */
    r = ol_parse(dec.p, dec.n, &f);
    CHECK(r == OL_OK, "parse: %s", ol_status_name(r));
    if (r == OL_OK) check_parsed(&f, jf);

    /* Re-encode from the JSON fields: exact bytes, exact buffer size suffices, one less doesn't. */
    {
        uint8_t *out = exact_buf(wire.n);
        r = build_from_json(jf, out, wire.n);
        CHECK(r == (int)wire.n && memcmp(out, wire.p, wire.n) == 0, "re-encode: %s (%d)",
              r < 0 ? ol_status_name(r) : "bytes differ", r);
        free(out);
        out = exact_buf(wire.n - 1);
        r = build_from_json(jf, out, wire.n - 1);
        CHECK(r == OL_ERR_NOSPACE, "cap one short: %s", ol_status_name(r));
        free(out);
    }
    case_end();
    free(ev);
    free(wire.p);
    free(dec.p);
}

/** One bad vector: exactly one error of the named kind, no frame, and the next frame is fine.
 *  A buffering decoder (ol_cobs_decode + ol_parse) must name the same error. */
static void test_bad_vector(const jval *b, const uint8_t *ping, size_t ping_len)
{
    const char *name = json_str(b, "name");
    const char *want = json_str(b, "error");
    bytes wire = unhex(json_str(b, "wireHex"));
    uint8_t buf[OL_FRAME_MAX];
    uint8_t big[512];
    ol_rx rx;
    ol_frame f;
    events *ev = calloc(1, sizeof *ev);
    int r;

    case_begin(name);
    ol_rx_init(&rx, buf, sizeof buf);
    feed(&rx, wire.p, wire.n, ev);
    CHECK(ev->n == 1, "%zu events, want 1", ev->n);
    if (ev->n >= 1) {
        CHECK(ev->kind[0] < 0 && strcmp(ol_status_name(ev->kind[0]), want) == 0, "got %s, want %s",
              ol_status_name(ev->kind[0]), want);
    }
    ev->n = 0;
    feed(&rx, ping, ping_len, ev);
    CHECK(ev->n == 1 && ev->kind[0] == OL_RX_FRAME, "no resync after %s", want);

    /* A buffering receiver collects up to 256 encoded bytes (a 254-byte frame in its longest,
     * non-canonical COBS form), calls anything longer too_long, then decodes and parses. */
    if (wire.n - 1 > OL_WIRE_MAX) {
        r = OL_ERR_TOO_LONG;
    } else {
        r = ol_cobs_decode(wire.p, wire.n - 1, big, sizeof big);
        if (r > (int)OL_FRAME_MAX) r = OL_ERR_TOO_LONG;
        if (r >= 0) r = ol_parse(big, (size_t)r, &f);
    }
    CHECK(strcmp(ol_status_name(r), want) == 0, "buffered path: %s, want %s", ol_status_name(r),
          want);
    case_end();
    free(ev);
    free(wire.p);
}

/** Finds a good vector by name. */
static const jval *find_good(const jval *good, const char *name)
{
    size_t i;
    for (i = 0; i < good->n; i++) {
        if (strcmp(json_str(good->items[i], "name"), name) == 0) return good->items[i];
    }
    return NULL;
}

/** One stream vector: the events, in order, are exactly the listed ones. */
static void test_stream(const jval *s, const jval *good)
{
    const jval *want = json_get(s, "events");
    bytes wire = unhex(json_str(s, "wireHex"));
    uint8_t buf[OL_FRAME_MAX];
    ol_rx rx;
    events *ev = calloc(1, sizeof *ev);
    size_t i;

    case_begin(json_str(s, "name"));
    ol_rx_init(&rx, buf, sizeof buf);
    feed(&rx, wire.p, wire.n, ev);
    CHECK(want && ev->n == want->n, "%zu events, want %zu", ev->n, want ? want->n : 0);
    for (i = 0; want && i < ev->n && i < want->n; i++) {
        const char *frame = json_str(want->items[i], "frame");
        const char *err = json_str(want->items[i], "error");
        if (frame) {
            const jval *g = find_good(good, frame);
            bytes dec = unhex(g ? json_str(g, "decodedHex") : "");
            CHECK(ev->kind[i] == OL_RX_FRAME && ev->frame_len[i] == dec.n &&
                      memcmp(ev->frame[i], dec.p, dec.n) == 0,
                  "event %zu: want frame %s, got %s", i, frame, ol_status_name(ev->kind[i]));
            free(dec.p);
        } else {
            CHECK(err && strcmp(ol_status_name(ev->kind[i]), err) == 0,
                  "event %zu: want error %s, got %s", i, err ? err : "?",
                  ol_status_name(ev->kind[i]));
        }
    }
    case_end();
    free(ev);
    free(wire.p);
}

/* ---- receiver robustness --------------------------------------------------------------------- */

/* All good vectors back to back, and where each frame starts. */
typedef struct {
    uint8_t *p;
    size_t n;
    size_t start[64];
    size_t count;
} stream;

/** Concatenates the wire form of every good vector. */
static stream make_stream(const jval *good)
{
    stream s;
    size_t i;
    memset(&s, 0, sizeof s);
    s.p = malloc(good->n * OL_WIRE_MAX);
    if (!s.p) abort();
    for (i = 0; i < good->n && i < 64; i++) {
        bytes w = unhex(json_str(good->items[i], "wireHex"));
        s.start[s.count++] = s.n;
        memcpy(s.p + s.n, w.p, w.n);
        s.n += w.n;
        free(w.p);
    }
    return s;
}

/** Checks that frames come out as the stream's frames in order, skipping index `skip`
 *  (SIZE_MAX for none); returns how many errors were seen. */
static size_t expect_frames(const events *ev, const stream *s, size_t skip)
{
    size_t i, k = 0, errors = 0;
    for (i = 0; i < ev->n; i++) {
        size_t len;
        uint8_t dec[OL_FRAME_MAX];
        if (ev->kind[i] != OL_RX_FRAME) {
            errors++;
            continue;
        }
        if (k == skip) k++;
        if (k >= s->count) {
            CHECK(0, "spurious frame");
            continue;
        }
        len = (k + 1 < s->count ? s->start[k + 1] : s->n) - s->start[k];
        CHECK(ol_cobs_decode(s->p + s->start[k], len - 1, dec, sizeof dec) ==
                      (int)ev->frame_len[i] &&
                  memcmp(dec, ev->frame[i], ev->frame_len[i]) == 0,
              "frame %zu differs", k);
        k++;
    }
    if (k == skip) k++;
    CHECK(k == s->count && ev->overflow == 0, "%zu of %zu frames", k, s->count);
    return errors;
}

/** The whole stream through one receiver, split into two reads at every position. A byte-wise
 *  receiver cannot care, and this proves it keeps no state outside the struct and buffer: the
 *  second half goes to a copy of the receiver moved to a different buffer. */
static void test_split_everywhere(const stream *s)
{
    size_t p;
    case_begin("receiver: stream split at every position");
    for (p = 0; p <= s->n; p++) {
        uint8_t buf1[OL_FRAME_MAX], buf2[OL_FRAME_MAX];
        ol_rx rx1, rx2;
        events *ev = calloc(1, sizeof *ev);
        ol_rx_init(&rx1, buf1, sizeof buf1);
        feed(&rx1, s->p, p, ev);
        rx2 = rx1;
        memcpy(buf2, buf1, sizeof buf1);
        rx2.buf = buf2;
        memset(buf1, 0x55, sizeof buf1); /* a receiver that still used buf1 would now see junk */
        feed(&rx2, s->p + p, s->n - p, ev);
        CHECK(expect_frames(ev, s, (size_t)-1) == 0, "errors at split %zu", p);
        free(ev);
    }
    case_end();
}

/** A 0x00 inserted at every position: frames not touched by it survive intact, the touched one
 *  is lost with at most two errors, and nothing spurious appears. */
static void test_inserted_delimiter(const stream *s)
{
    size_t p, k;
    case_begin("receiver: a stray 0x00 at every position");
    for (p = 0; p < s->n; p++) {
        uint8_t buf[OL_FRAME_MAX];
        ol_rx rx;
        events *ev = calloc(1, sizeof *ev);
        size_t hit = (size_t)-1, errors;
        uint8_t zero = 0;
        for (k = 0; k < s->count; k++) {
            size_t end = (k + 1 < s->count ? s->start[k + 1] : s->n) - 1; /* its delimiter */
            if (p > s->start[k] && p < end) hit = k;
        }
        ol_rx_init(&rx, buf, sizeof buf);
        feed(&rx, s->p, p, ev);
        feed(&rx, &zero, 1, ev);
        feed(&rx, s->p + p, s->n - p, ev);
        errors = expect_frames(ev, s, hit);
        CHECK(hit == (size_t)-1 ? errors == 0 : errors >= 1 && errors <= 2,
              "%zu errors for a 0x00 at %zu", errors, p);
        free(ev);
    }
    case_end();
}

/** Every good frame cut short at every length and terminated: at most one error, never a
 *  frame, and the full frame that follows is received. */
static void test_truncated_everywhere(const jval *good)
{
    size_t i, k;
    case_begin("receiver: every frame truncated at every position");
    for (i = 0; i < good->n; i++) {
        bytes w = unhex(json_str(good->items[i], "wireHex"));
        for (k = 1; k + 1 < w.n; k++) {
            uint8_t buf[OL_FRAME_MAX];
            uint8_t zero = 0;
            ol_rx rx;
            events *ev = calloc(1, sizeof *ev);
            ol_rx_init(&rx, buf, sizeof buf);
            feed(&rx, w.p, k, ev);
            feed(&rx, &zero, 1, ev);
            CHECK(ev->n == 1 && ev->kind[0] < 0, "%s cut at %zu: %zu events", 
                  json_str(good->items[i], "name"), k, ev->n);
            ev->n = 0;
            feed(&rx, w.p, w.n, ev);
            CHECK(ev->n == 1 && ev->kind[0] == OL_RX_FRAME, "%s after cut at %zu",
                  json_str(good->items[i], "name"), k);
            free(ev);
        }
        free(w.p);
    }
    case_end();
}

/** Random noise, then a delimiter, then a real frame, thousands of times: every real frame
 *  arrives, in order, and noise never yields a frame. */
static void test_noise_resync(const jval *good)
{
    uint8_t buf[OL_FRAME_MAX];
    uint8_t noise[400];
    ol_rx rx;
    int i, frames = 0, errors = 0;
    case_begin("receiver: resync after random noise (3000 bursts)");
    ol_rx_init(&rx, buf, sizeof buf);
    for (i = 0; i < 3000; i++) {
        const jval *g = good->items[rnd_below((uint32_t)good->n)];
        bytes w = unhex(json_str(g, "wireHex"));
        bytes dec = unhex(json_str(g, "decodedHex"));
        size_t n = rnd_below(400), j;
        uint32_t zero_odds = 1 + rnd_below(64); /* some bursts dense with zeros, some free of them */
        events *ev = calloc(1, sizeof *ev);
        for (j = 0; j < n; j++) {
            noise[j] = (uint8_t)rnd();
            if (rnd_below(zero_odds) == 0) noise[j] = 0;
        }
        feed(&rx, noise, n, ev);
        for (j = 0; j < ev->n; j++) {
            CHECK(ev->kind[j] < 0, "noise produced a frame (burst %d)", i);
            errors++;
        }
        ev->n = 0;
        feed(&rx, (const uint8_t *)"", 1, ev); /* the delimiter a sender puts before a frame */
        errors += (int)ev->n;
        ev->n = 0;
        feed(&rx, w.p, w.n, ev);
        CHECK(ev->n == 1 && ev->kind[0] == OL_RX_FRAME && ev->frame_len[0] == dec.n &&
                  memcmp(ev->frame[0], dec.p, dec.n) == 0,
              "frame after burst %d", i);
        frames += ev->n == 1 && ev->kind[0] == OL_RX_FRAME;
        free(ev);
        free(w.p);
        free(dec.p);
    }
    CHECK(frames == 3000, "%d frames", frames);
    CHECK(errors > 1000, "only %d errors from noise: is it reaching the receiver?", errors);
    case_end();
}

/** A receiver with a small buffer: short frames pass, longer ones are too_long, then resync. */
static void test_small_buffer(void)
{
    uint8_t buf[8];
    uint8_t wire[OL_WIRE_MAX];
    ol_rx rx;
    events *ev = calloc(1, sizeof *ev);
    int n;
    case_begin("receiver: caller buffer smaller than OL_FRAME_MAX");
    ol_rx_init(&rx, buf, sizeof buf);
    n = ol_build_cmd(wire, sizeof wire, 1, "led", (const uint8_t *)"\x01", 1); /* 10 bytes */
    feed(&rx, wire, (size_t)n, ev);
    CHECK(ev->n == 1 && ev->kind[0] == OL_ERR_TOO_LONG, "10-byte frame into 8 bytes");
    ev->n = 0;
    n = ol_build_ack(wire, sizeof wire, 2, 1); /* 6 bytes */
    feed(&rx, wire, (size_t)n, ev);
    CHECK(ev->n == 1 && ev->kind[0] == OL_RX_FRAME && rx.frame.u.ack.cmd_seq == 1, "ack fits");
    case_end();
    free(ev);
}

/** The one COBS form senders must not produce (a 0x01 after a final full block) still decodes,
 *  in the receiver and in ol_cobs_decode, to the same frame. */
static void test_noncanonical_cobs(const jval *good)
{
    const jval *g = find_good(good, "data-max-length-no-zero");
    bytes w = unhex(g ? json_str(g, "wireHex") : "");
    bytes dec = unhex(g ? json_str(g, "decodedHex") : "");
    uint8_t buf[OL_FRAME_MAX];
    uint8_t in[OL_WIRE_MAX + 1];
    ol_rx rx;
    events *ev = calloc(1, sizeof *ev);
    int r;
    case_begin("cobs: trailing 0x01 after a final 0xFF block is accepted");
    CHECK(g && w.n == OL_WIRE_MAX && w.p[0] == 0xFF, "vector shape");
    if (g && w.n == OL_WIRE_MAX) {
        memcpy(in, w.p, w.n - 1);
        in[w.n - 1] = 0x01;
        in[w.n] = 0x00;
        r = ol_cobs_decode(in, w.n, buf, sizeof buf);
        CHECK(r == (int)dec.n && memcmp(buf, dec.p, dec.n) == 0, "decode %d", r);
        ol_rx_init(&rx, buf, sizeof buf);
        feed(&rx, in, w.n + 1, ev);
        CHECK(ev->n == 1 && ev->kind[0] == OL_RX_FRAME, "rx");
    }
    case_end();
    free(ev);
    free(w.p);
    free(dec.p);
}

/* ---- library units ----------------------------------------------------------------------------- */

/** The CRC check value from the catalogue, and the empty input. */
static void test_crc(void)
{
    case_begin("crc16: CCITT-FALSE check value");
    CHECK(ol_crc16((const uint8_t *)"123456789", 9) == 0x29B1, "check value");
    CHECK(ol_crc16(NULL, 0) == 0xFFFF, "empty input is the init value");
    case_end();
}

/** Random buffers of 0..1000 bytes with varied zero density: encode fits the documented bound
 *  (exact for 1..254), has no zero, and decodes back, both to another buffer and in place. */
static void test_cobs_random(void)
{
    int i;
    case_begin("cobs: 5000 random round trips, lengths 0..1000");
    for (i = 0; i < 5000; i++) {
        size_t n = i < 1000 ? (size_t)(i % 300) : rnd_below(1001), j;
        uint32_t zero_odds = 1 + rnd_below(300);
        size_t cap = OL_COBS_ENCODED_MAX(n);
        uint8_t *src = exact_buf(n), *enc = exact_buf(cap), *dec = exact_buf(n);
        int e, d;
        for (j = 0; j < n; j++) src[j] = rnd_below(zero_odds) == 0 ? 0 : (uint8_t)(1 + rnd_below(255));
        e = ol_cobs_encode(src, n, enc, cap);
        CHECK(e > 0 && (size_t)e <= cap, "encode %zu bytes: %d", n, e);
        if (e <= 0) goto next;
        CHECK(n < 1 || n > 254 || (size_t)e == n + 1, "%zu bytes encode to %d", n, e);
        CHECK(memchr(enc, 0, (size_t)e) == NULL, "zero in encoding");
        d = ol_cobs_decode(enc, (size_t)e, dec, n);
        CHECK(d == (int)n && (n == 0 || memcmp(dec, src, n) == 0), "decode %zu: %d", n, d);
        d = ol_cobs_decode(enc, (size_t)e, enc, (size_t)e); /* in place */
        CHECK(d == (int)n && (n == 0 || memcmp(enc, src, n) == 0), "in-place decode %zu", n);
        if (n > 0) {
            d = ol_cobs_decode(enc, (size_t)e, dec, n - 1);
            (void)d; /* enc was overwritten in place; only checking it stays in bounds */
            CHECK(ol_cobs_encode(src, n, enc, (size_t)e - 1) == OL_ERR_NOSPACE, "encode cap-1");
        }
    next:
        free(src);
        free(enc);
        free(dec);
    }
    case_end();
}

/** Hand-picked COBS cases, including the paper's examples and errors. */
static void test_cobs_cases(void)
{
    static const struct {
        const char *dec, *enc;
    } cases[] = {
        {"", "01"},
        {"00", "0101"},
        {"0000", "010101"},
        {"1100", "021101"},
        {"112233", "04112233"},
        {"11002200", "0211022201"},
    };
    size_t i;
    uint8_t out[16];
    case_begin("cobs: known encodings and decode errors");
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes d = unhex(cases[i].dec), e = unhex(cases[i].enc);
        int r = ol_cobs_encode(d.p, d.n, out, sizeof out);
        CHECK(r == (int)e.n && memcmp(out, e.p, e.n) == 0, "encode %s", cases[i].dec);
        r = ol_cobs_decode(e.p, e.n, out, sizeof out);
        CHECK(r == (int)d.n && (d.n == 0 || memcmp(out, d.p, d.n) == 0), "decode %s", cases[i].enc);
        free(d.p);
        free(e.p);
    }
    CHECK(ol_cobs_decode((const uint8_t *)"\x03\x11", 2, out, sizeof out) == OL_ERR_COBS, "short block");
    CHECK(ol_cobs_decode((const uint8_t *)"\x03\x11\x00", 3, out, sizeof out) == OL_ERR_COBS, "zero inside");
    CHECK(ol_cobs_decode((const uint8_t *)"\x00", 1, out, sizeof out) == OL_ERR_COBS, "zero code");
    CHECK(ol_cobs_decode((const uint8_t *)"\x03\x11\x22", 3, out, 1) == OL_ERR_NOSPACE, "nospace");
    CHECK(ol_cobs_decode(NULL, 0, out, 0) == 0, "empty");
    case_end();
}

/** Builder argument checks: the library refuses to emit frames receivers would reject. */
static void test_builder_errors(void)
{
    uint8_t out[OL_WIRE_MAX];
    char s255[256], s256[257];
    ol_field_def dup[2] = {{1, OL_INT32, "a", NULL}, {1, OL_BOOL, "b", ""}};
    ol_field_def badtype[1] = {{1, 6, "a", NULL}};
    ol_field_def noname[1] = {{1, OL_INT32, "", NULL}};
    ol_data_builder b;
    int i;

    case_begin("builders: argument and size errors");
    memset(s255, 'x', 255);
    s255[255] = '\0';
    memset(s256, 'x', 256);
    s256[256] = '\0';
    CHECK(ol_build_hello(out, sizeof out, 0, "", NULL, NULL, 0) == OL_ERR_ARG, "empty id");
    CHECK(ol_build_hello(out, sizeof out, 0, NULL, NULL, NULL, 0) == OL_ERR_ARG, "NULL id");
    CHECK(ol_build_hello(out, sizeof out, 0, "d", NULL, dup, 2) == OL_ERR_ARG, "duplicate id");
    CHECK(ol_build_hello(out, sizeof out, 0, "d", NULL, badtype, 1) == OL_ERR_ARG, "value type 6");
    CHECK(ol_build_hello(out, sizeof out, 0, "d", NULL, noname, 1) == OL_ERR_ARG, "empty name");
    CHECK(ol_build_hello(out, sizeof out, 0, "d\xC3\x28", NULL, NULL, 0) == OL_ERR_ARG, "bad utf-8");
    CHECK(ol_build_hello(out, sizeof out, 0, s256, NULL, NULL, 0) == OL_ERR_ARG, "256-byte id");
    CHECK(ol_build_hello(out, sizeof out, 0, s255, NULL, NULL, 0) == OL_ERR_TOO_LONG, "255-byte id");
    CHECK(ol_build_cmd(out, sizeof out, 0, "", NULL, 0) == OL_ERR_ARG, "empty cmd name");
    CHECK(ol_build_cmd(out, sizeof out, 0, "x", NULL, 3) == OL_ERR_ARG, "NULL args");
    CHECK(ol_build_nak(out, sizeof out, 0, 1, 1, "\xED\xA0\x80") == OL_ERR_ARG, "surrogate");
    CHECK(ol_build_nak(out, sizeof out, 0, 1, 1, s255) == OL_ERR_TOO_LONG, "long nak message");
    CHECK(ol_build_frame(out, sizeof out, OL_TYPE_CMD, 0, NULL, 1) == OL_ERR_ARG, "NULL body");
    CHECK(ol_build_ping(NULL, 0, 0) == OL_ERR_NOSPACE, "NULL out");
    CHECK(ol_build_ping(out, OL_WIRE_MIN - 1, 0) == OL_ERR_NOSPACE, "ping cap 6");
    CHECK(ol_build_ping(out, OL_WIRE_MIN, 0) == (int)OL_WIRE_MIN, "ping cap 7");

    /* DATA errors are sticky: the first one wins and finish reports it. */
    ol_data_begin(&b, out, sizeof out, 0);
    CHECK(ol_data_string(&b, 1, "\xC0\xAF") == OL_ERR_ARG, "overlong utf-8");
    CHECK(ol_data_int32(&b, 2, 5) == OL_ERR_ARG, "sticky");
    CHECK(ol_data_finish(&b) == OL_ERR_ARG, "finish reports the first error");
    ol_data_begin(&b, out, sizeof out, 0);
    for (i = 0; i < 41; i++) ol_data_uint32(&b, (uint8_t)i, 0);
    CHECK(b.status == OL_OK && b.len == 3 + 41 * 6, "41 uint32 fit (251 bytes with the CRC)");
    CHECK(ol_data_uint32(&b, 41, 0) == OL_ERR_TOO_LONG, "a 42nd would make 257 bytes");
    CHECK(ol_data_finish(&b) == OL_ERR_TOO_LONG, "finish");
    ol_data_begin(&b, out, 16, 0);
    CHECK(ol_data_uint32(&b, 1, 1) == OL_OK, "13 wire bytes fit in 16");
    CHECK(ol_data_uint32(&b, 2, 1) == OL_ERR_NOSPACE, "19 wire bytes do not");
    case_end();
}

/** Status names are the error spellings of PROTOCOL.md and the vectors. */
static void test_status_names(void)
{
    case_begin("ol_status_name spells the vector error names");
    CHECK(strcmp(ol_status_name(OL_ERR_COBS), "cobs") == 0, "cobs");
    CHECK(strcmp(ol_status_name(OL_ERR_TOO_LONG), "too_long") == 0, "too_long");
    CHECK(strcmp(ol_status_name(OL_ERR_CRC), "crc") == 0, "crc");
    CHECK(strcmp(ol_status_name(OL_ERR_VERSION), "version") == 0, "version");
    CHECK(strcmp(ol_status_name(OL_ERR_TYPE), "type") == 0, "type");
    CHECK(strcmp(ol_status_name(OL_ERR_MALFORMED), "malformed") == 0, "malformed");
    CHECK(strcmp(ol_status_name(12345), "unknown") == 0, "unknown");
    case_end();
}

/* ---- random round trips ------------------------------------------------------------------------ */

/** Writes a random valid UTF-8 string of at most max_bytes (mixing 1- to 4-byte sequences) and
 *  returns its length. */
static size_t rnd_utf8(char *out, size_t max_bytes, bool nonempty)
{
    static const char *const pieces[] = {"a", "Z", "0", "-", "_", " ", "/", "\xC2\xB0",
                                         "\xC3\xA9", "\xC2\xB5", "\xE2\x82\xAC", "\xED\x9F\xBF",
                                         "\xEE\x80\x80", "\xF0\x9F\x8C\xA1", "\xF4\x8F\xBF\xBF"};
    size_t want = rnd_below((uint32_t)max_bytes + 1), n = 0;
    if (nonempty && want == 0) want = 1;
    while (n < want) {
        const char *p = pieces[rnd_below(sizeof pieces / sizeof pieces[0])];
        size_t len = strlen(p);
        if (n + len > want) {
            if (n == 0 && nonempty) continue;
            break;
        }
        memcpy(out + n, p, len);
        n += len;
    }
    out[n] = '\0';
    return n;
}

/* What a random frame was built from, to compare with what the receiver parsed. */
typedef struct {
    uint8_t type, seq;
    char s1[256], s2[256];
    ol_field_def fields[16];
    char names[16][32], units[16][16];
    uint8_t nfields;
    ol_value values[40];
    char strs[40][24];
    uint8_t nvalues;
    uint8_t args[250];
    size_t nargs;
    uint8_t cmd_seq, code;
} spec;

/** Builds a random frame of a random type into out; returns the builder's result. Sizes are
 *  drawn so that some frames overflow OL_FRAME_MAX, which must then be OL_ERR_TOO_LONG. */
static int build_random(spec *sp, uint8_t *out, size_t cap)
{
    size_t i;
    memset(sp, 0, sizeof *sp);
    sp->type = (uint8_t)(1 + rnd_below(6));
    sp->seq = (uint8_t)rnd();
    switch (sp->type) {
    case OL_TYPE_HELLO: {
        uint8_t used[256] = {0};
        rnd_utf8(sp->s1, 40, true);
        rnd_utf8(sp->s2, 20, false);
        sp->nfields = (uint8_t)rnd_below(9);
        for (i = 0; i < sp->nfields; i++) {
            uint8_t id;
            do id = (uint8_t)rnd(); while (used[id]);
            used[id] = 1;
            sp->fields[i].id = id;
            sp->fields[i].type = (uint8_t)(1 + rnd_below(5));
            rnd_utf8(sp->names[i], 24, true);
            rnd_utf8(sp->units[i], 8, false);
            sp->fields[i].name = sp->names[i];
            sp->fields[i].unit = sp->units[i];
        }
        return ol_build_hello(out, cap, sp->seq, sp->s1, sp->s2, sp->fields, sp->nfields);
    }
    case OL_TYPE_DATA: {
        ol_data_builder b;
        sp->nvalues = (uint8_t)rnd_below(41);
        ol_data_begin(&b, out, cap, sp->seq);
        for (i = 0; i < sp->nvalues; i++) {
            ol_value *v = &sp->values[i];
            uint32_t u = rnd();
            v->id = (uint8_t)rnd();
            v->type = (uint8_t)(1 + rnd_below(5));
            switch (v->type) {
            case OL_INT32: memcpy(&v->as.i32, &u, 4); ol_data_int32(&b, v->id, v->as.i32); break;
            case OL_UINT32: v->as.u32 = u; ol_data_uint32(&b, v->id, u); break;
            case OL_FLOAT32: memcpy(&v->as.f32, &u, 4); ol_data_float32(&b, v->id, v->as.f32); break;
            case OL_BOOL: v->as.b = u & 1; ol_data_bool(&b, v->id, v->as.b); break;
            default:
                v->as.s.len = (uint8_t)rnd_utf8(sp->strs[i], 23, false);
                v->as.s.ptr = sp->strs[i];
                ol_data_string(&b, v->id, sp->strs[i]);
                break;
            }
        }
        return ol_data_finish(&b);
    }
    case OL_TYPE_CMD:
        rnd_utf8(sp->s1, 16, true);
        sp->nargs = rnd_below(250);
        for (i = 0; i < sp->nargs; i++) sp->args[i] = (uint8_t)(rnd_below(4) ? rnd() : 0);
        return ol_build_cmd(out, cap, sp->seq, sp->s1, sp->args, sp->nargs);
    case OL_TYPE_ACK:
        sp->cmd_seq = (uint8_t)rnd();
        return ol_build_ack(out, cap, sp->seq, sp->cmd_seq);
    case OL_TYPE_NAK:
        sp->cmd_seq = (uint8_t)rnd();
        sp->code = (uint8_t)rnd();
        rnd_utf8(sp->s1, 255, false);
        return ol_build_nak(out, cap, sp->seq, sp->cmd_seq, sp->code, sp->s1);
    default:
        return ol_build_ping(out, cap, sp->seq);
    }
}

/** Compares a received frame with the spec it was built from. */
static void check_random(const spec *sp, const ol_frame *f)
{
    size_t i;
    CHECK(f->type == sp->type && f->seq == sp->seq, "header");
    if (f->type != sp->type) return;
    switch (f->type) {
    case OL_TYPE_HELLO: {
        ol_iter it = f->u.hello.fields;
        ol_field_info fi;
        CHECK(str_eq(f->u.hello.device_id, sp->s1) && str_eq(f->u.hello.firmware, sp->s2), "ids");
        CHECK(f->u.hello.field_count == sp->nfields, "count");
        for (i = 0; i < sp->nfields; i++) {
            CHECK(ol_next_field(&it, &fi) && fi.id == sp->fields[i].id &&
                      fi.type == sp->fields[i].type && str_eq(fi.name, sp->names[i]) &&
                      str_eq(fi.unit, sp->units[i]),
                  "field %zu", i);
        }
        break;
    }
    case OL_TYPE_DATA: {
        ol_iter it = f->u.data.values;
        ol_value v;
        CHECK(f->u.data.value_count == sp->nvalues, "value count");
        for (i = 0; i < sp->nvalues; i++) {
            const ol_value *w = &sp->values[i];
            bool same;
            if (!ol_next_value(&it, &v)) {
                CHECK(0, "value %zu missing", i);
                break;
            }
            same = v.id == w->id && v.type == w->type;
            if (same && v.type == OL_STRING) same = v.as.s.len == w->as.s.len && memcmp(v.as.s.ptr, w->as.s.ptr, v.as.s.len) == 0;
            else if (same && v.type == OL_BOOL) same = v.as.b == w->as.b;
            else if (same) same = memcmp(&v.as.u32, &w->as.u32, 4) == 0; /* bits, NaNs included */
            CHECK(same, "value %zu", i);
        }
        break;
    }
    case OL_TYPE_CMD:
        CHECK(str_eq(f->u.cmd.name, sp->s1) && f->u.cmd.args_len == sp->nargs &&
                  (sp->nargs == 0 || memcmp(f->u.cmd.args, sp->args, sp->nargs) == 0),
              "cmd");
        break;
    case OL_TYPE_ACK:
        CHECK(f->u.ack.cmd_seq == sp->cmd_seq, "ack");
        break;
    case OL_TYPE_NAK:
        CHECK(f->u.nak.cmd_seq == sp->cmd_seq && f->u.nak.code == sp->code &&
                  str_eq(f->u.nak.message, sp->s1),
              "nak");
        break;
    default:
        break;
    }
}

/** Thousands of random frames through builder -> receiver -> parser, all on one receiver so the
 *  state between frames is exercised too. Frames that overflow must be refused by the builder. */
static void test_random_round_trips(void)
{
    uint8_t rxbuf[OL_FRAME_MAX];
    ol_rx rx;
    int i, built = 0, too_long = 0;
    spec *sp = malloc(sizeof *sp);
    case_begin("round trips: 20000 random frames of every type");
    ol_rx_init(&rx, rxbuf, sizeof rxbuf);
    for (i = 0; i < 20000; i++) {
        uint8_t out[OL_WIRE_MAX];
        uint8_t enc[OL_WIRE_MAX];
        int n = build_random(sp, out, sizeof out), r = OL_RX_NONE, e;
        size_t j;
        if (n == OL_ERR_TOO_LONG) {
            too_long++;
            continue;
        }
        CHECK(n >= (int)OL_WIRE_MIN && n <= (int)OL_WIRE_MAX, "built %d (type %u)", n, sp->type);
        if (n < 0) continue;
        built++;
        for (j = 0; j < (size_t)n; j++) {
            r = ol_rx_push(&rx, out[j]);
            if (j + 1 < (size_t)n) CHECK(r == OL_RX_NONE, "early event %s", ol_status_name(r));
        }
        CHECK(r == OL_RX_FRAME, "frame %d: %s", i, ol_status_name(r));
        if (r != OL_RX_FRAME) continue;
        check_random(sp, &rx.frame);
        /* The builders' in-place COBS must agree with the general encoder. */
        e = ol_cobs_encode(rx.buf, rx.len, enc, sizeof enc);
        CHECK(e == n - 1 && memcmp(enc, out, (size_t)e) == 0, "in-place vs general COBS");
    }
    CHECK(built > 15000 && too_long > 50, "%d built, %d too long: the mix is off", built, too_long);
    free(sp);
    case_end();
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "vectors/frames.json";
    char err[160];
    char *text = read_file(path);
    jval *doc;
    const jval *good, *bad, *streams;
    size_t i;
    bytes ping;

    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        return 2;
    }
    doc = json_parse(text, err, sizeof err);
    free(text);
    if (!doc) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 2;
    }
    good = json_get(doc, "good");
    bad = json_get(doc, "bad");
    streams = json_get(doc, "streams");
    if (!good || !bad || !streams || good->t != J_ARR || bad->t != J_ARR || streams->t != J_ARR ||
        good->n == 0 || good->n > 64) {
        fprintf(stderr, "%s: expected good, bad and streams arrays\n", path);
        json_free(doc);
        return 2;
    }

    test_crc();
    test_cobs_cases();
    test_cobs_random();
    test_status_names();
    test_builder_errors();

    for (i = 0; i < good->n; i++) test_good_vector(good->items[i]);
    ping = unhex(json_str(find_good(good, "ping"), "wireHex"));
    for (i = 0; i < bad->n; i++) test_bad_vector(bad->items[i], ping.p, ping.n);
    free(ping.p);
    for (i = 0; i < streams->n; i++) test_stream(streams->items[i], good);

    {
        stream s = make_stream(good);
        test_split_everywhere(&s);
        test_inserted_delimiter(&s);
        free(s.p);
    }
    test_truncated_everywhere(good);
    test_noise_resync(good);
    test_small_buffer();
    test_noncanonical_cobs(good);
    test_random_round_trips();

    printf("vectors: %zu good, %zu bad, %zu streams\n", good->n, bad->n, streams->n);
    printf("firmware-bridge: %d passed, %d failed\n", g_cases_passed, g_cases_failed);
    json_free(doc);
    return g_cases_failed ? 1 : 0;
}
