/*
 * utf8.h - make handler text valid UTF-8 before baton stores it.
 *
 * Text a handler gives baton (its error text, its result, a command's
 * stderr tail) ends up in PostgreSQL, whose text and jsonb types refuse
 * invalid UTF-8 and the character U+0000 alike. These functions clean such
 * text where it enters and cut it on character boundaries.
 */
#ifndef BATON_UTF8_H
#define BATON_UTF8_H

#include <stddef.h>

/*
 * Returns a malloc'd, NUL-terminated, valid UTF-8 copy of s[0..len) (NULL
 * when out of memory) and its length in *out_len (if not NULL). Valid
 * sequences are copied unchanged; overlong forms, surrogates (U+D800..DFFF),
 * code points above U+10FFFF, stray continuation bytes and truncated
 * sequences each become U+FFFD (EF BF BD): one per invalid byte, or one per
 * truncated sequence (its lead byte with the continuation bytes that fit).
 * s may hold NUL bytes: each becomes U+FFFD too, since PostgreSQL's text
 * and jsonb cannot hold U+0000 (a jsonb "\u0000" is refused), so the copy
 * is text PostgreSQL stores as it is, and C string functions see it whole.
 */
char *baton_utf8_sanitize(const char *s, size_t len, size_t *out_len);

/*
 * The length of the longest head of s[0..len) of at most max bytes that does
 * not end inside a multi-byte character: max moved back over continuation
 * bytes (at most 3) when s[max] continues a character. len itself when
 * len <= max.
 */
size_t baton_utf8_head_len(const char *s, size_t len, size_t max);

/*
 * The offset where the tail of s[0..len) of at most max bytes starts on a
 * character boundary: len - max moved forward over continuation bytes (at
 * most 3). 0 when len <= max.
 */
size_t baton_utf8_tail_start(const char *s, size_t len, size_t max);

#endif
