#!/usr/bin/env python3
"""Runs a command REPEAT times and prints its median wall time (s) and the peak RSS (KiB) of its
largest process, read from getrusage(RUSAGE_CHILDREN) so the command is not disturbed by sampling."""
import os
import resource
import statistics
import subprocess
import sys
import time

repeat = int(os.environ.get("REPEAT", "3"))
times = []
for _ in range(repeat):
    started = time.perf_counter()
    done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    times.append(time.perf_counter() - started)
    if done.returncode not in (0,):
        sys.stderr.write(done.stderr.decode(errors="replace")[-2000:])
        sys.exit(f"measure: {sys.argv[1:]} exited with {done.returncode}")
print(f"{statistics.median(times):.4f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
