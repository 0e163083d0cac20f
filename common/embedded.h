/*
 * embedded.h - files compiled into the binaries (SQL migrations, Lua scripts).
 *
 * The tables are generated at build time by cmake/embed.cmake so that a
 * deployed binary carries its migrations and scripts and never depends on a
 * source tree being present. Each table is sorted by name and ends with an
 * all-zero entry; `<table>_count` gives its length without the terminator.
 */
#ifndef BATON_EMBEDDED_H
#define BATON_EMBEDDED_H

#include <stddef.h>

struct baton_embedded_file {
    const char *name; /* base file name, e.g. "0001_history.sql" */
    const char *data; /* file contents, NUL-terminated, static storage */
    size_t len;       /* length of data without the terminator */
};

#endif
