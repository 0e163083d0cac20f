/*
 * source_file.h - for unit tests that read the project's own files (the
 * Lua scripts' headers, the migrations' CHECK lists) to check that C and
 * those files agree. Header-only: each test is one executable.
 */
#ifndef BATON_TEST_SOURCE_FILE_H
#define BATON_TEST_SOURCE_FILE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* Whole file into a new string (caller frees); fails the test if absent. */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

#endif
