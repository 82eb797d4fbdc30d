#!/usr/bin/python3
"""scripts/layers.py DIR... - the house limits on a daemon's C files, read
from the source: which file calls which (a call is a use of a function
another file of DIR defines with external linkage), the pairs that call
each other both ways, files over 800 lines and functions over 80.

Prints the call graph (`a.c -> b.c: f, g`), then one line per breach;
exits 1 when there is a breach. Limits: a textual reading (a function's
body runs from a definition at the start of a line to the next `}` at the
start of a line; calls through pointers are not seen); good enough for
code written in the house style (clang-format, one definition per
function).
"""
import os
import re
import sys

DEF = re.compile(r"^(?!static\b)[A-Za-z_][\w \*]*?\b([a-z_]\w*)\((?!\*)[^;]*$")
STATIC_DEF = re.compile(r"^static\b[\w \*]*?\b([a-z_]\w*)\([^;]*$")
IDENT = re.compile(r"\b([a-z_]\w*)\b")


def functions(lines):
    """(name, first line, length) of each function defined in lines."""
    out, name, start = [], None, 0
    for i, line in enumerate(lines):
        if name is None:
            m = DEF.match(line) or STATIC_DEF.match(line)
            if m and not line.rstrip().endswith(";"):
                name, start = m.group(1), i
        elif line.startswith("}"):
            out.append((name, start + 1, i - start + 1))
            name = None
    return out


def main(dirs):
    files = {}
    for d in dirs:
        for f in sorted(os.listdir(d)):
            if f.endswith(".c"):
                with open(os.path.join(d, f), encoding="utf-8") as fh:
                    files[os.path.join(d, f)] = fh.read().split("\n")
    defined = {}
    for path, lines in files.items():
        for line in lines:
            m = DEF.match(line)
            if m and not line.rstrip().endswith(";"):
                defined[m.group(1)] = path
    edges = {}
    for path, lines in files.items():
        text = "\n".join(l for l in lines if not l.lstrip().startswith(("*", "/*", "//")))
        for ident in set(IDENT.findall(text)):
            owner = defined.get(ident)
            if owner and owner != path:
                edges.setdefault((path, owner), set()).add(ident)
    bad = 0
    for (a, b), names in sorted(edges.items()):
        print(f"{os.path.basename(a)} -> {os.path.basename(b)}: {', '.join(sorted(names))}")
    for (a, b) in sorted(edges):
        if a < b and (b, a) in edges:
            bad += 1
            print(f"BOTH WAYS: {a} <-> {b}")
    for path, lines in files.items():
        if len(lines) - 1 > 800:
            bad += 1
            print(f"OVER 800 LINES: {path} ({len(lines) - 1})")
        for name, start, length in functions(lines):
            if length > 80:
                bad += 1
                print(f"OVER 80 LINES: {path}:{start} {name} ({length})")
    print(f"{len(files)} files, {len(edges)} file-to-file edges, {bad} breaches")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
