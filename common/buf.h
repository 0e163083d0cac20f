/*
 * buf.h - a growing text buffer, for output built piece by piece
 * (Prometheus exposition text, COPY data for PostgreSQL).
 *
 * An allocation failure is sticky: later appends do nothing and `failed`
 * stays set, so a caller checks once at the end instead of after every
 * append. The text is kept NUL-terminated.
 */
#ifndef BATON_BUF_H
#define BATON_BUF_H

#include <stddef.h>

struct baton_buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes of text, without the terminator */
    size_t cap; /* bytes allocated */
    int failed; /* an allocation failed */
};

/* Appends `n` bytes of `s`. */
void baton_buf_put(struct baton_buf *b, const char *s, size_t n);

/* Empties the buffer, keeping its memory for reuse. */
void baton_buf_reset(struct baton_buf *b);

/* Frees the memory; the buffer is empty and reusable afterwards. */
void baton_buf_free(struct baton_buf *b);

#endif
