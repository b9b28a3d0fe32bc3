#!/usr/bin/env python3
"""Builds data/2024-austria-race/ — the compact real race bundled for `pitwall run`.

Source: the project's shared data, f1/2024_austria_race/ (OpenF1 session 9550; see
that folder's README for where it came from). The 20 per-driver location files are
merged into one time-ordered `location.csv.gz` (columns date, driver_number, x, y, z;
session and meeting keys dropped), and the small event tables are copied as they are.

    python3 scripts/make-austria-bundle.py [SHARED_DATA_DIR]
"""
import csv
import glob
import gzip
import os
import shutil
import sys

src = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "../shared/data", "f1/2024_austria_race")
dst = os.path.join(os.path.dirname(__file__), "..", "data", "2024-austria-race")
os.makedirs(dst, exist_ok=True)

rows = []
for f in sorted(glob.glob(os.path.join(src, "location", "*.csv"))):
    with open(f, newline="") as fh:
        for d in csv.DictReader(fh):
            rows.append((d["date"], int(d["driver_number"]), d["x"], d["y"], d["z"]))
rows.sort(key=lambda t: (t[0], t[1]))
text = "date,driver_number,x,y,z\n" + "".join(f"{a},{b},{c},{d},{e}\n" for a, b, c, d, e in rows)
# mtime=0: the same input gives a byte-identical file.
with open(os.path.join(dst, "location.csv.gz"), "wb") as raw:
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as g:
        g.write(text.encode())

for name in [
    "drivers.csv",
    "stints.csv",
    "openf1_race_control.csv",
    "openf1_pit.csv",
    "openf1_session_result.csv",
    "openf1_overtakes.csv",
]:
    shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
print(f"{len(rows)} location rows -> {dst}")
