/*
 * utf8.c - valid UTF-8 copies and character-boundary cuts (utf8.h).
 *
 * A hand-written decoder after the Unicode "maximal subpart" practice: the
 * allowed range of the second byte depends on the lead byte, which is what
 * rejects overlongs (E0 80.., F0 80..), surrogates (ED A0..) and code points
 * above U+10FFFF (F4 90..); C0, C1 and F5..FF never lead. NUL is treated
 * as invalid too: it is what PostgreSQL refuses in text and jsonb.
 */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#define IS_CONT(c) (((c)&0xC0) == 0x80)

/* Bytes of a valid sequence at p (1..4), or 0 and *bad = bytes to replace. */
static size_t seq_len(const unsigned char *p, size_t avail, size_t *bad) {
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c == 0) {
        *bad = 1; /* valid UTF-8, but no PostgreSQL text can hold U+0000 */
        return 0;
    }
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        *bad = 1; /* continuation byte, C0, C1, F5..FF */
        return 0;
    }
    size_t k = 1;
    while (k < need && k < avail) {
        unsigned char b = p[k];
        if (k == 1 ? (b < lo || b > hi) : !IS_CONT(b))
            break;
        k++;
    }
    if (k == need)
        return need;
    *bad = k; /* the lead byte and the continuation bytes that fit */
    return 0;
}

char *baton_utf8_sanitize(const char *s, size_t len, size_t *out_len) {
    const unsigned char *p = (const unsigned char *)s;
    /* Each input byte yields at most 3 output bytes (one U+FFFD). */
    if (len > ((size_t)-1 - 1) / 3)
        return NULL;
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t bad = 0, n = seq_len(p + i, len - i, &bad);
        if (n) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += bad;
        }
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    char *shrunk = realloc(out, o + 1);
    return shrunk ? shrunk : out;
}

size_t baton_utf8_head_len(const char *s, size_t len, size_t max) {
    if (len <= max)
        return len;
    size_t cut = max;
    for (int k = 0; k < 3 && cut > 0 && IS_CONT((unsigned char)s[cut]); k++)
        cut--;
    return cut;
}

size_t baton_utf8_tail_start(const char *s, size_t len, size_t max) {
    if (len <= max)
        return 0;
    size_t start = len - max;
    for (int k = 0; k < 3 && start < len && IS_CONT((unsigned char)s[start]); k++)
        start++;
    return start;
}
