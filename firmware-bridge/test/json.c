/*
 * json.c - a small recursive-descent JSON reader for the host tests (see json.h).
 */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p;
    char *err;
    size_t errlen;
    int depth;
} parser;

/** Records the first error with the offending text, and returns NULL for convenience. */
static jval *fail(parser *ps, const char *msg)
{
    if (ps->err[0] == '\0') snprintf(ps->err, ps->errlen, "%s near \"%.20s\"", msg, ps->p);
    return NULL;
}

/** Skips JSON whitespace. */
static void skip_ws(parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r') ps->p++;
}

/** Allocates a zeroed value of type t; aborts on out-of-memory, which a test cannot recover. */
static jval *new_val(jtype t)
{
    jval *v = calloc(1, sizeof *v);
    if (!v) abort();
    v->t = t;
    return v;
}

/** Reads four hex digits of a \u escape. */
static bool hex4(parser *ps, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = *ps->p++;
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return false;
    }
    *out = v;
    return true;
}

/** Appends code point cp as UTF-8 at *o. */
static void put_utf8(char **o, unsigned cp)
{
    if (cp < 0x80) {
        *(*o)++ = (char)cp;
    } else if (cp < 0x800) {
        *(*o)++ = (char)(0xC0 | (cp >> 6));
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *(*o)++ = (char)(0xE0 | (cp >> 12));
        *(*o)++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *(*o)++ = (char)(0xF0 | (cp >> 18));
        *(*o)++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *(*o)++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    }
}

/** Parses a string literal (the opening quote is at ps->p) into a new heap string. Escapes only
 *  shrink, so the raw length bounds the result. */
static char *parse_string(parser *ps)
{
    const char *start = ++ps->p;
    const char *q = start;
    char *out, *o;
    while (*q && *q != '"') q += (*q == '\\' && q[1]) ? 2 : 1;
    if (*q != '"') return (char *)fail(ps, "unterminated string");
    out = malloc((size_t)(q - start) + 1);
    if (!out) abort();
    o = out;
    while (*ps->p != '"') {
        char c = *ps->p++;
        unsigned cp, lo;
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        c = *ps->p++;
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (!hex4(ps, &cp)) goto bad;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (ps->p[0] != '\\' || ps->p[1] != 'u') goto bad;
                ps->p += 2;
                if (!hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(&o, cp);
            break;
        default:
            goto bad;
        }
    }
    ps->p++;
    *o = '\0';
    return out;
bad:
    free(out);
    return (char *)fail(ps, "bad escape");
}

static jval *parse_value(parser *ps);

/** Parses an array or object body after its opening bracket. */
static jval *parse_container(parser *ps, bool object)
{
    jval *v = new_val(object ? J_OBJ : J_ARR);
    size_t cap = 0;
    char close = object ? '}' : ']';
    ps->p++;
    skip_ws(ps);
    if (*ps->p == close) {
        ps->p++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        jval *item;
        skip_ws(ps);
        if (object) {
            if (*ps->p != '"' || !(key = parse_string(ps))) goto bad;
            skip_ws(ps);
            if (*ps->p++ != ':') {
                free(key);
                fail(ps, "expected ':'");
                goto bad;
            }
        }
        item = parse_value(ps);
        if (!item) {
            free(key);
            goto bad;
        }
        if (v->n == cap) {
            cap = cap ? cap * 2 : 8;
            v->items = realloc(v->items, cap * sizeof *v->items);
            if (object) v->keys = realloc(v->keys, cap * sizeof *v->keys);
            if (!v->items || (object && !v->keys)) abort();
        }
        v->items[v->n] = item;
        if (object) v->keys[v->n] = key;
        v->n++;
        skip_ws(ps);
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            return v;
        }
        fail(ps, "expected ',' or closing bracket");
        goto bad;
    }
bad:
    json_free(v);
    return NULL;
}

/** Parses any JSON value at ps->p. */
static jval *parse_value(parser *ps)
{
    jval *v;
    skip_ws(ps);
    if (++ps->depth > 64) return fail(ps, "nested too deep");
    switch (*ps->p) {
    case '{':
    case '[':
        v = parse_container(ps, *ps->p == '{');
        break;
    case '"': {
        char *s = parse_string(ps);
        if (!s) return NULL;
        v = new_val(J_STR);
        v->str = s;
        break;
    }
    case 't':
    case 'f':
    case 'n':
        if (strncmp(ps->p, "true", 4) == 0) {
            v = new_val(J_BOOL);
            v->b = true;
            ps->p += 4;
        } else if (strncmp(ps->p, "false", 5) == 0) {
            v = new_val(J_BOOL);
            ps->p += 5;
        } else if (strncmp(ps->p, "null", 4) == 0) {
            v = new_val(J_NULL);
            ps->p += 4;
        } else {
            return fail(ps, "bad literal");
        }
        break;
    default: {
        char *end;
        double d = strtod(ps->p, &end);
        if (end == ps->p) return fail(ps, "unexpected character");
        v = new_val(J_NUM);
        v->num = d;
        ps->p = end;
        break;
    }
    }
    ps->depth--;
    return v;
}

jval *json_parse(const char *text, char *err, size_t errlen)
{
    parser ps;
    jval *v;
    ps.p = text;
    ps.err = err;
    ps.errlen = errlen;
    ps.depth = 0;
    err[0] = '\0';
    v = parse_value(&ps);
    if (!v) return NULL;
    skip_ws(&ps);
    if (*ps.p != '\0') {
        json_free(v);
        return fail(&ps, "trailing characters");
    }
    return v;
}

void json_free(jval *v)
{
    size_t i;
    if (!v) return;
    for (i = 0; i < v->n; i++) {
        json_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

const jval *json_get(const jval *o, const char *key)
{
    size_t i;
    if (!o || o->t != J_OBJ) return NULL;
    for (i = 0; i < o->n; i++) {
        if (strcmp(o->keys[i], key) == 0) return o->items[i];
    }
    return NULL;
}

const char *json_str(const jval *o, const char *key)
{
    const jval *v = json_get(o, key);
    return v && v->t == J_STR ? v->str : NULL;
}

char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    if (!f) return NULL;
    do {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap + 1);
            if (!buf) abort();
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}
