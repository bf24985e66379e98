import subprocess, sys, re, collections
def load(fn):
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", fn], capture_output=True, text=True).stdout
    d = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)", line)
        if m and "PROGRAM TOTALS" not in line:
            name = m.group(2)
            name = re.sub(r"/tmp/python-build[^ ]*/Python-3.11.7/", "", name)
            name = re.sub(r" \[.*", "", name)
            d[name] += int(m.group(1).replace(",", ""))
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
per = float(sys.argv[3])
diff = collections.Counter({k: b[k] - a[k] for k in set(a) | set(b)})
tot = sum(diff.values())
print("total per record", tot / per)
for k, v in diff.most_common(int(sys.argv[4]) if len(sys.argv) > 4 else 45):
    print(f"{v/per:9.0f} {100*v/tot:5.1f}% {k[:120]}")
