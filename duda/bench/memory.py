"""Peak memory of a piece of work, as growth over the memory in use before it.

CUDA: the caching allocator's own counters (`max_memory_allocated`), exact and cheap.
CPU: the process's resident set. Its high-water mark (VmHWM) only ever grows, so it is reset
before each measurement by writing 5 to /proc/self/clear_refs (Linux ≥ 4.0); where that is not
allowed, a thread samples VmRSS every millisecond instead (which can miss a short spike).
"""

from __future__ import annotations

import ctypes
import re
import threading
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def release_free_memory() -> None:
    """Hand memory the allocator keeps after `free` back to the OS (glibc `malloc_trim`).

    Without it, a network measured after a larger one reuses the larger one's freed heap pages,
    its resident set does not grow, and its peak reads as zero.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to trim
        return
    libc.malloc_trim(0)


def rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import resource  # not Linux: only the lifetime peak exists

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_rss_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.001):
            self.peak = max(self.peak, rss_bytes())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, rss_bytes())


class PeakMemory:
    """`start()` takes the baseline; `reset_peak()` forgets the peak so far (keeping the
    baseline); `peak_growth()` is the peak since the last reset minus the baseline, in bytes."""

    def __init__(self, device: torch.device):
        self.device = device
        self.baseline = 0
        self.method = "cuda_max_allocated" if device.type == "cuda" else "rss_hwm"
        self._sampler: _Sampler | None = None

    def _current(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device)
        return rss_bytes()

    def start(self) -> None:
        self.baseline = self._current()
        self.reset_peak()

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        if not _reset_rss_peak():
            self.method = "rss_sampled"
            self._sampler = _Sampler()
            self._sampler.start()

    def peak_growth(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._sampler is not None:
            peak = self._sampler.stop()
            self._sampler = None
        else:
            peak = (_status_kib("VmHWM") or 0) * 1024
        return max(peak - self.baseline, 0)
