#!/usr/bin/env python3
"""check_examples.py - compiles every C example of the docs and headers.

An example that no longer compiles teaches a reader the wrong API, so each
one is built by ctest (docs.examples) against the project's libraries:

  * in Markdown (README.md, docs/*.md): every ```c block. The line before its
    fence is a marker saying how it is built:
        <!-- example: program -->    a whole program with main(), linked
        <!-- example: unit -->       top-level code without main(); a stub
                                     main() is added and the result linked,
                                     so a function that does not exist fails
    and optionally ", same as PATH": the block must then be byte for byte the
    file PATH of the repository (an example that another test runs).
  * in headers (common/, worker/, producer/): a block of comment lines
    indented four spaces or more that calls a baton_ function or has an
    #include. The last comment line with text before the block carries the
    marker, e.g.
    "... (example: unit):". A unit from a header gets #include of that
    header in front.

An unmarked C example (a ```c block, or an indented header block that looks
like code) fails the test: every example is compiled, none by choice.

usage: check_examples.py --source-dir DIR --work-dir DIR --cc CC
                         --cflags 'F1;F2' --libs 'L1;L2'
"""
import argparse
import glob
import os
import re
import subprocess
import sys

MARKER = re.compile(r"example: (program|unit)(?:, same as (\S+?))?(?=\s*(?:-->|\)|$))")
CODE_HINT = re.compile(r"\bbaton_\w+\s*\(|#include")


class Example:
    def __init__(self, path, line, mode, same_as, text, header):
        self.path = path        # relative to the source dir
        self.line = line        # 1-based line of the first line of code
        self.mode = mode        # "program" or "unit"; None when unmarked
        self.same_as = same_as  # repository path the text must equal, or None
        self.text = text
        self.header = header    # header to include for a unit, or None


def markdown_examples(root, rel):
    lines = open(os.path.join(root, rel), encoding="utf-8").read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```\s*(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        lang = fence.group(2).lower()
        start = i + 1
        end = start
        while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        body = "\n".join(lines[start:end]) + "\n"
        is_c = lang in ("c", "h") or (lang == "" and CODE_HINT.search(body))
        if is_c:
            prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            m = MARKER.search(prev) if "<!--" in prev else None
            out.append(Example(rel, start + 1, m.group(1) if m else None,
                               m.group(2) if m else None, body, None))
        i = end + 1
    return out


def header_examples(root, rel):
    lines = open(os.path.join(root, rel), encoding="utf-8").read().split("\n")
    out = []
    indented = re.compile(r"^ \*( {4,}\S.*)$")
    i = 0
    while i < len(lines):
        if not indented.match(lines[i]):
            i += 1
            continue
        start = i
        block = []
        # A block runs on over blank comment lines while indented ones follow.
        while i < len(lines):
            m = indented.match(lines[i])
            if m:
                block.append(m.group(1))
                i += 1
            elif lines[i].rstrip() == " *" and i + 1 < len(lines) and indented.match(lines[i + 1]):
                block.append("")
                i += 1
            else:
                break
        text = "\n".join(block)
        prev = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].rstrip() != " *"), "")
        m = MARKER.search(prev)
        if not m and not CODE_HINT.search(text):
            continue  # a formula or a quoted command line, not C
        indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
        text = "\n".join(b[indent:] for b in block) + "\n"
        out.append(Example(rel, start + 1, m.group(1) if m else None,
                           m.group(2) if m else None, text, os.path.basename(rel)))
    return out


def source_of(example):
    origin = '#line %d "%s"\n' % (example.line, example.path)
    if example.mode == "program":
        return origin + example.text
    head = '#include "%s"\n' % example.header if example.header else ""
    return head + origin + example.text + "\nint main(void) { return 0; }\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--cc", required=True)
    ap.add_argument("--cflags", default="")
    ap.add_argument("--libs", default="")
    args = ap.parse_args()
    root = args.source_dir
    cflags = [f for f in args.cflags.split(";") if f]
    libs = [f for f in args.libs.split(";") if f]

    docs = ["README.md"] + sorted(os.path.relpath(p, root)
                                  for p in glob.glob(os.path.join(root, "docs", "*.md")))
    headers = sorted(os.path.relpath(p, root)
                     for d in ("common", "worker", "producer")
                     for p in glob.glob(os.path.join(root, d, "*.h"))
                     if not p.endswith("_internal.h"))
    examples = []
    for rel in docs:
        examples += markdown_examples(root, rel)
    for rel in headers:
        examples += header_examples(root, rel)

    os.makedirs(args.work_dir, exist_ok=True)
    failed = 0
    for n, ex in enumerate(examples):
        where = "%s:%d" % (ex.path, ex.line)
        if ex.mode is None:
            print("FAIL %s: C example without a marker; put '<!-- example: program -->' or "
                  "'<!-- example: unit -->' before a Markdown block, '(example: unit)' on the "
                  "comment line before a header block (see %s)" % (where, __file__))
            failed += 1
            continue
        if ex.same_as:
            want = open(os.path.join(root, ex.same_as), encoding="utf-8").read()
            if want != ex.text:
                print("FAIL %s: the example differs from %s; copy the file into the block"
                      % (where, ex.same_as))
                failed += 1
                continue
        src = os.path.join(args.work_dir, "example_%02d.c" % n)
        with open(src, "w", encoding="utf-8") as f:
            f.write(source_of(ex))
        flags = cflags + (["-Wno-unused-function"] if ex.mode == "unit" else [])
        cmd = [args.cc] + flags + [src, "-o", src[:-2]] + libs
        run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True)
        if run.returncode != 0:
            print("FAIL %s (%s): does not compile or link:\n%s" % (where, ex.mode, run.stdout))
            failed += 1
        else:
            print("ok   %s (%s)" % (where, ex.mode))
    print("%d examples, %d failed" % (len(examples), failed))
    if not examples:
        print("FAIL: no example found under %s: wrong --source-dir?" % root)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
