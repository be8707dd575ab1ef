#!/usr/bin/env python3
"""CPU of one durable commit on this machine's disk, by how the written pages lie.

    python3 benches/fsync_extents.py [DIR] [--commits N]

Each row writes the same way N times, each time followed by fdatasync, into a 64 MiB file in
DIR (default: the system's temporary directory; put it on the disk the spool would use), and
prints the process's CPU time (user + system) per commit. The file is written in full and
fsynced first, so no row pays for block allocation, except "growing", which appends to a file
that starts empty (the file size changes with every commit).

Rows: 1, 3, 6 and 10 pages of 4 KiB at scattered offsets (as a copy-on-write B-tree such as
redb writes a commit's dirty pages); 3 and 10 pages at one offset (as a log appends); 9,000
bytes appended to a growing file. BENCHMARKS.md §24 has a run.
"""
import os
import resource
import sys
import tempfile

PAGE = 4096
FILE_PAGES = 16384  # 64 MiB


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def row(directory, label, commits, write):
    fd, path = tempfile.mkstemp(dir=directory)
    try:
        if label != "growing":
            os.pwrite(fd, b"\0" * (FILE_PAGES * PAGE), 0)
            os.fsync(fd)
        c0 = cpu()
        for i in range(commits):
            write(fd, i)
            os.fdatasync(fd)
        per = (cpu() - c0) / commits * 1e6
    finally:
        os.close(fd)
        os.unlink(path)
    print(f"| {label} | {per:.1f} |")


def main():
    args = sys.argv[1:]
    commits = 2000
    if "--commits" in args:
        i = args.index("--commits")
        commits = int(args[i + 1])
        del args[i:i + 2]
    directory = args[0] if args else None
    page = b"y" * PAGE

    def scattered(n):
        def w(fd, i):
            for p in range(n):
                os.pwrite(fd, page, ((i * 7 + p * 131) % (FILE_PAGES - 1)) * PAGE)
        return w

    def contiguous(n):
        return lambda fd, i: os.pwrite(fd, page * n, ((i * n) % (FILE_PAGES - n)) * PAGE)

    def growing(fd, i):
        os.pwrite(fd, b"x" * 9000, i * 9000)

    print("| pages written per commit | CPU µs per commit |")
    print("|---|---:|")
    for n in (1, 3, 6, 10):
        row(directory, f"{n} scattered", commits, scattered(n))
    for n in (3, 10):
        row(directory, f"{n} at one offset", commits, contiguous(n))
    row(directory, "growing", commits, growing)


if __name__ == "__main__":
    main()
