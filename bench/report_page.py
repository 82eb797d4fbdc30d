"""bench/report_page.py - the page bench/report.py writes (docs/benchmarks.md):
its lines, the hand-written readings from bench/notes.md, the plots (gnuplot,
PNG) and their data files, and the project's performance targets the
sections compare against. Standard library only.
"""
import os
import re
import subprocess
import sys

from report_parse import read

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the project's performance targets.
T_PROC = 250_000
T_MEM = 8192
T_CONNS = 50_000
T_P50 = 3.0
T_P99 = 10.0
T_RATE = 10_000
T_REPLAY = 500_000  # replay target, records/s


def notes():
    """Sections of bench/notes.md by their '## name' heading."""
    out, name = {}, None
    for line in read(os.path.join(ROOT, "bench", "notes.md")).splitlines():
        m = re.match(r"^## (\S+)", line)
        if m:
            name = m.group(1)
            out[name] = []
        elif name:
            out[name].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def gnuplot(script, png):
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
        return True
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", "") or str(e)
        print(f"report: gnuplot failed for {png}: {err.strip()[:300]}", file=sys.stderr)
        return False


HEAD = 'set terminal pngcairo size 900,500 font "sans,11" noenhanced\nset grid\n'


def write_dat(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")


class Page:
    """The page being written: its lines, the notes, the plots and their data files."""

    def __init__(self, doc, img, pdir):
        self.lines, self.nt, self.img, self.pdir = [], notes(), img, pdir
        self.rel_img = os.path.relpath(img, os.path.dirname(os.path.abspath(doc)))

    def w(self, line):
        self.lines.append(line)

    def note(self, name):
        if self.nt.get(name):
            self.w("")
            self.w(self.nt[name])

    def plot(self, name, script, alt):
        png = os.path.join(self.img, f"bench-{name}.png")
        if gnuplot(HEAD + f'set output "{png}"\n' + script, png):
            self.w("")
            self.w(f"![{alt}]({self.rel_img}/bench-{name}.png)")
