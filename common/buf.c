/*
 * buf.c - the growing text buffer (see buf.h).
 */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

void baton_buf_put(struct baton_buf *b, const char *s, size_t n) {
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void baton_buf_reset(struct baton_buf *b) {
    b->len = 0;
    b->failed = 0;
    if (b->data)
        b->data[0] = '\0';
}

void baton_buf_free(struct baton_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}
