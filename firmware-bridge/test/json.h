/*
 * json.h - just enough JSON to read vectors/frames.json in the host tests. Test code only: it
 * allocates, which the library itself never does.
 */
#ifndef OL_TEST_JSON_H
#define OL_TEST_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype t;
    bool b;
    double num;
    char *str;     /* J_STR: NUL-terminated UTF-8 (the vectors never hold U+0000) */
    size_t n;      /* J_ARR / J_OBJ: number of items */
    struct jval **items;
    char **keys;   /* J_OBJ: keys[i] names items[i] */
} jval;

/** Parses a whole JSON document; returns NULL and writes a message to `err` on failure. */
jval *json_parse(const char *text, char *err, size_t errlen);

/** Frees a value returned by json_parse, with everything under it. */
void json_free(jval *v);

/** Returns the member `key` of object `o`, or NULL if `o` is not an object or lacks it. */
const jval *json_get(const jval *o, const char *key);

/** Returns member `key` as a string, or NULL if it is missing or not a string. */
const char *json_str(const jval *o, const char *key);

/** Reads a whole file into a NUL-terminated heap buffer, or returns NULL. */
char *read_file(const char *path);

#endif
