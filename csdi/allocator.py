"""glibc's malloc set to keep freed memory for reuse, for the CPU sampler's many large tensors.

Every network call of the sampler allocates and frees activations of a few MiB. By default
glibc serves a block above its mmap threshold (128 KiB, raised only as far as the largest block
freed so far) with fresh pages from the kernel and returns the top of the heap beyond 128 KiB
at every free, so each call pays page faults and the kernel's zeroing of those pages again.
Setting the thresholds (`mallopt`, glibc's documented tunables, the same as its
MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ environment variables) keeps that memory in
the process: what PyTorch's CPU performance guide gets by preloading jemalloc or tcmalloc.
Measured in reports/performance/sampler_cpu.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters of glibc's malloc.h
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
#: Blocks up to glibc's largest mmap threshold on 64-bit (32 MiB) come from the heap.
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of the heap kept for reuse, and the padding each heap growth adds.
TRIM_THRESHOLD = 2**30
TOP_PAD = 64 * 2**20


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds (above) for this process; True where the C library has
    glibc's `mallopt` and accepted them, False elsewhere (nothing is changed there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD),
    )
    return all(mallopt(p, v) == 1 for p, v in settings)
