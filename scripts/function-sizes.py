#!/usr/bin/python3
"""The series' functions over MAX lines (80), as a maintainer counts them.

Every function of migration/colo*.c, and every function of the files below
that the series adds or grows (longer at the tip than in the base), from
its first line to its closing brace. QEMU's style puts a function's
opening brace alone in column 0, which is what this relies on.

Prints one line per function over MAX, and exits 1 if there is one.
make check runs it on the work tree.
"""

import argparse
import glob
import os
import re
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROWN_FILES = ("migration/ram.c", "migration/savevm.c", "system/physmem.c",
               "migration/migration.c", "block/replication.c",
               "net/colo-compare.c", "net/filter-rewriter.c")
NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def functions(text):
    """{name: (first line, lines)} of TEXT's function definitions"""
    lines = text.splitlines()
    out = {}
    for i, line in enumerate(lines):
        if line != "{":
            continue
        # The header: back to the line after a blank one, a closing brace,
        # a comment's end or a preprocessor line
        start = i
        while start > 0 and lines[start - 1].strip() and \
                not lines[start - 1].startswith(("}", "#", " */", "*/")) \
                and not lines[start - 1].rstrip().endswith(";"):
            start -= 1
        header = " ".join(lines[start:i])
        m = NAME.search(header)
        if not m or "=" in header.split("(")[0]:
            continue            # an initializer, not a function
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j] == "}"), len(lines) - 1)
        out[m.group(1)] = (start + 1, end - start + 1)
    return out


def at_base(src, base, path):
    r = subprocess.run(["git", "-C", src, "show", f"{base}:{path}"],
                       capture_output=True, text=True)
    return functions(r.stdout) if r.returncode == 0 else {}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", default=os.path.join(TOP, "qemu"))
    ap.add_argument("--base", default="base-10.2.2")
    ap.add_argument("--max", type=int, default=80)
    args = ap.parse_args()
    colo = sorted(os.path.relpath(p, args.src) for p in
                  glob.glob(os.path.join(args.src, "migration/colo*.c")))
    over = []
    for path in colo + list(GROWN_FILES):
        with open(os.path.join(args.src, path)) as f:
            tip = functions(f.read())
        base = at_base(args.src, args.base, path)
        for name, (line, size) in sorted(tip.items(), key=lambda x: x[1]):
            was = base.get(name, (0, None))[1]
            if size <= args.max or (was is not None and size <= was and
                                    path not in colo):
                continue
            how = "new" if was is None else f"{was} at base"
            over.append(f"{path}:{line}: {name}: {size} lines ({how})")
    for line in over:
        print(line)
    print(f"function-sizes: {len(over)} over {args.max} lines")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
