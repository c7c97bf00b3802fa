#!/usr/bin/env python3
"""Medians of several `tools/bench.sh` runs: `tools/bench-median.py run1.txt run2.txt run3.txt`.

Each file is the whole output of one run (both programs); their JSON lines are read, rows are
matched by contender and size, and every figure and ratio is the median over the runs (the ratio
against ZeroMQ of each run is listed too, to show the spread)."""
import json
import statistics
import sys

runs = []
for path in sys.argv[1:]:
    lines = [l for l in open(path) if l.startswith('{')]
    if len(lines) != 2:
        sys.exit(f"{path}: expected the two JSON lines of tools/bench.sh, found {len(lines)}")
    runs.append((json.loads(lines[0]), json.loads(lines[1])))
if not runs:
    sys.exit(__doc__)
def key(r): return (r['contender'], r['size'])
def med(v,f):
    xs=[x.get(f) for x in v if x.get(f) is not None]
    return statistics.median(xs) if xs else float('nan')
rows={}
for tp,_ in runs:
    for r in tp['rows']:
        rows.setdefault(key(r),[]).append(r)
print("system  mode                            size        msgs/s     MB/s  vs floor  vs ZeroMQ  (vs ZeroMQ per run)")
for k,v in rows.items():
    size = {32:'32 B',1024:'1 KiB',65536:'64 KiB'}[k[1]]
    per = ', '.join('%.2f' % x['ratio_vs_zmq'] for x in v)
    print("%-7s %-30s %6s %13s %8.1f %8.2fx %9.2fx  (%s)" % (v[0]['system'], v[0]['mode'], size, format(round(med(v,'msgs_per_s')),','), med(v,'mb_per_s'), med(v,'ratio_vs_floor'), med(v,'ratio_vs_zmq'), per))
rows={}
for _,pp in runs:
    for r in pp['rows']:
        rows.setdefault(key(r),[]).append(r)
print()
print("system  mode                                 size     p50     p99   p99.9      max  p50/busy  p50/blocking  p99.9/busy")
for k,v in rows.items():
    size = {32:'32 B',1024:'1 KiB',65536:'64 KiB'}[k[1]]
    print("%-7s %-36s %6s %7.2f %7.1f %7.1f %8.1f %8.2fx %12.2fx %10.2fx" % (v[0]['system'], v[0]['mode'], size, med(v,'p50_ns')/1e3, med(v,'p99_ns')/1e3, med(v,'p999_ns')/1e3, med(v,'max_ns')/1e3, med(v,'p50_vs_floor_busy'), med(v,'p50_vs_floor_blocking'), med(v,'p999_vs_floor_busy')))
