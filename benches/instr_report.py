"""Per-request figures from a callgrind dump (benches/instr.sh).

    python3 benches/instr_report.py REQUESTS FILE [FILE ...]   # "INSTR/REQ HMAC/REQ TIMERS/REQ"
    python3 benches/instr_report.py --calls PATTERN REQUESTS FILE   # calls/request per function

Only dumps taken with `callgrind_control -d` are read (their names end in `.1`): the file
written when the process exits holds its shutdown. Timers = calls of tokio's timer wheel
registration (`time::Handle::reregister`), each one a timer armed or moved. HMAC = the
instructions of hookseal's MAC computation (`MacKey::compute_body`, inclusive): under valgrind
SHA-256 runs in software (no SHA-NI), ~60k instructions at 1 KiB, where natively it is the
0.75 us of a bare HMAC; the figure without it is the one to compare with the floor.
"""

import re
import sys

TIMER = re.compile(r"time::handle::Handle>?::reregister|time::Handle>?::reregister|driver::Handle>?::reregister")


def read(path):
    """(total instructions, {function name: calls}, {function name: inclusive instructions})."""
    names = {}
    calls = {}
    incl = {}
    total = 0
    callee = None
    pending = None

    def name(spec):
        m = re.match(r"\((\d+)\)(?: (.*))?", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                name(line[3:].strip())
            elif line.startswith("cfn="):
                callee = name(line[4:].strip())
            elif line.startswith("calls=") and callee is not None:
                n = int(line[6:].split()[0])
                calls[callee] = calls.get(callee, 0) + n
                pending = callee
                continue
            elif line.startswith("totals:") or (line.startswith("summary:") and not total):
                total = int(line.split()[1])
            elif pending is not None and line[:1] in "0123456789+-*":
                # The cost line after `calls=`: the call's inclusive cost.
                incl[pending] = incl.get(pending, 0) + int(line.split()[-1])
            pending = None
    return total, calls, incl


def main():
    args = sys.argv[1:]
    pattern = None
    if args and args[0] == "--calls":
        pattern = re.compile(args[1])
        args = args[2:]
    n = int(args[0])
    files = [p for p in args[1:] if p.endswith(".1")]
    if not files:
        sys.exit("no callgrind dump (*.1) given")
    total = 0
    calls = {}
    incl = {}
    for p in files:
        t, c, i = read(p)
        total += t
        for k, v in c.items():
            calls[k] = calls.get(k, 0) + v
        for k, v in i.items():
            incl[k] = incl.get(k, 0) + v
    if pattern:
        for k, v in sorted(calls.items(), key=lambda kv: -kv[1]):
            if pattern.search(k):
                print(f"{v / n:10.2f}  {k}")
        return
    timers = sum(v for k, v in calls.items() if TIMER.search(k))
    hmac = sum(v for k, v in incl.items() if k.endswith("MacKey::compute_body"))
    print(f"{total / n:10.0f} {hmac / n:8.0f} {timers / n:10.2f}")


if __name__ == "__main__":
    main()
