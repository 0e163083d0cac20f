#!/usr/bin/env python3
"""configuration.py - docs/configuration.md, generated from the option tables.

Each binary prints its own table with the hidden flag --help-markdown
(baton_config_parse() in common/config.c); this script puts the tables
under one heading per binary, after the text below. The same tables make
--help, so the page cannot drift from what the binaries accept.

  configuration.py --write OUT.md NAME=BINARY...   regenerate the page
  configuration.py --check OUT.md NAME=BINARY...   exit 1 (and a diff) when
                                                   the page is out of date
With --check it also reads the ```sh blocks of README.md and docs/*.md and
fails on a flag given to one of these binaries that its --help does not
list (batonctl: its commands' --help too).

Regenerate with: cmake --build build --target configuration-doc
"""
import difflib
import glob
import os
import re
import subprocess
import sys

REGENERATE = "cmake --build build --target configuration-doc"

INTRO = """\
# Configuration

<!-- Generated from the option tables of the binaries by
     tests/docs/configuration.py: do not edit by hand. Regenerate with
     `%s` (build = your build directory);
     ctest's docs.configuration fails while this page is out of date. -->

Every setting of every binary is one entry of that binary's option table,
and this page is printed from those tables (so is each binary's `--help`).
Regenerate it after adding or changing an option:

```sh
%s
```

How values are read:

- Every flag `--name` has an environment variable `BATON_NAME` (upper
  case, `-` becomes `_`), except the entries marked *flag only* (a
  variable of that name is ignored, never an error).
  Precedence: the default, then the environment variable, then the flag:
  the flag wins. A flag is written `--name value` or `--name=value`.
- An unknown flag, a value of the wrong type or out of its range stops the
  binary at start with one line naming the flag or variable (exit status
  2): nothing is silently ignored.
- **bool**: `true`, `false`, `1`, `0`, `yes`, `no`, `on`, `off`; a bool
  flag alone means true (`--json`).
- **text, repeatable**: each repetition of the flag adds one entry; the
  environment variable holds one entry per line.
- **duration**: a number with a unit, `500ms`, `30s`, `2m`, `1h`, `1d`,
  `1w`, or a sum of them (`1h30m`). For the options whose type says
  *bare number: ms* (their names end in `-ms`), a number alone is
  milliseconds, as it always was: `--lease-ms 30000` and `--lease-ms 30s`
  are the same. Other durations need their unit. A name ending in `-s`
  (`--timeout-s`) takes whole seconds.
- *(required)*: the binary refuses to start without it (flag or variable).
- Each binary's options are grouped under the same headings in its
  `--help` and below.
""" % (REGENERATE, REGENERATE)

# name: (heading text, paragraph)
SECTIONS = {
    "baton-scheduler": (
        "Consumes tasks from Kafka into the Redis queues (ingest), runs the "
        "maintenance loop (due tasks, deadlines, expired leases) and the "
        "history writer (Redis events into PostgreSQL). `--ingest`, "
        "`--maintenance` and `--history` switch each part off, so they can run "
        "in separate processes. See [architecture.md](architecture.md)."),
    "baton-worker": (
        "Claims tasks from Redis queues and runs them with built-in or command "
        "handlers. How handlers run, leases and graceful stop: "
        "[worker.md](worker.md)."),
    "batonctl": (
        "The global options; they go before or after the command "
        "(`batonctl --json status ID` and `batonctl status ID --json` are the "
        "same). Each command's own flags (no environment variables) are in "
        "[batonctl.md](batonctl.md) and `batonctl COMMAND --help`."),
    "baton-submit": (
        "Publishes tasks to Kafka. The settings have environment variables; the "
        "input and the task's fields are flags only, so a variable left in the "
        "environment never changes what is submitted. The task fields are "
        "defined in [task-contract.md](task-contract.md)."),
    "baton-bench": (
        "The end-to-end benchmark on a running local stack "
        "([performance.md](performance.md))."),
}


def table_of(binary):
    # A bad BATON_* value in the caller's environment would stop the parser
    # before it reaches the flag; the tables do not depend on it anyway.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    run = subprocess.run([binary, "--help-markdown"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, universal_newlines=True)
    if run.returncode != 0 or not run.stdout.startswith(("| flag |", "### ")):
        sys.exit("configuration.py: %s --help-markdown failed (exit %d): %s"
                 % (binary, run.returncode, run.stderr.strip()))
    return run.stdout


def render(binaries):
    parts = [INTRO]
    for name, binary in binaries:
        if name not in SECTIONS:
            sys.exit("configuration.py: no section text for %s: add it to SECTIONS" % name)
        parts.append("\n## %s\n\n%s\n\n%s" % (name, wrap(SECTIONS[name]), table_of(binary)))
    return "".join(parts)


def wrap(text, width=76):
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = word if not line else line + " " + word
    lines.append(line)
    return "\n".join(lines)


def known_flags(name, binary):
    def help_of(*args):
        return subprocess.run([binary] + list(args) + ["--help"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True)
    run = help_of()
    if run.returncode != 0:  # e.g. a leak report under ASan: the text is lost
        sys.exit("configuration.py: %s --help failed (exit %d): %s"
                 % (binary, run.returncode, run.stderr.strip()[-2000:]))
    text = run.stdout
    if name == "batonctl" and "commands:" in text:
        for command in re.findall(r"^  ([a-z]+) ", text.split("commands:")[1], re.M):
            text += help_of(command).stdout
    return set(re.findall(r"--[a-z0-9][a-z0-9-]*", text)) | {"--help"}


def unknown_shell_flags(root, binaries):
    """Lines of ```sh examples that pass a binary a flag it does not have."""
    known = {name: known_flags(name, binary) for name, binary in binaries}
    found = []
    for path in [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md"))):
        lines = open(path, encoding="utf-8").read().split("\n")
        shell, i = False, 0
        while i < len(lines):
            fence = re.match(r"^\s*```(\S*)", lines[i])
            if fence:
                shell = not shell and fence.group(1) in ("sh", "bash")
                i += 1
                continue
            start, text = i, lines[i]
            while shell and text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i]
            i += 1
            if not shell:
                continue
            for part in re.split(r"\||;|&&|\$\(", re.sub(r"(^|\s)#.*", "", text)):
                words = [w for w in part.split() if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)]
                name = os.path.basename(words[0]) if words else ""
                for flag in re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", " ".join(words[1:])):
                    if name in known and flag not in known[name]:
                        found.append("%s:%d: %s has no flag %s" % (os.path.relpath(path, root),
                                                                   start + 1, name, flag))
    return found


def main(argv):
    if len(argv) < 3 or argv[0] not in ("--write", "--check"):
        sys.exit(__doc__)
    mode, path = argv[0], argv[1]
    binaries = [arg.split("=", 1) for arg in argv[2:]]
    want = render(binaries)
    if mode == "--write":
        with open(path, "w", encoding="utf-8") as f:
            f.write(want)
        print("wrote %s" % path)
        return 0
    try:
        have = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        have = ""
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    unknown = unknown_shell_flags(root, binaries)
    for line in unknown:
        print("FAIL " + line)
    if have == want and not unknown:
        print("%s matches the option tables of %d binaries; the shell examples use only "
              "flags that exist" % (path, len(binaries)))
        return 0
    if have == want:
        return 1
    sys.stdout.writelines(difflib.unified_diff(
        have.splitlines(True), want.splitlines(True), path, "the binaries' option tables"))
    build_dir = os.environ.get("BATON_BUILD_DIR", "build")
    print("\nFAIL: %s is out of date with the option tables (a flag was added, removed or "
          "changed).\nRegenerate it and commit the result:\n\n    cmake --build %s "
          "--target configuration-doc\n" % (path, build_dir))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
