"""Stop between two steps when the scheduler says the job is about to be killed.

SLURM sends SIGTERM (and, with `--signal`, SIGUSR1 or another signal) some time before it kills
a job at its time limit or on preemption; submitit asks for SIGUSR2 and requeues the job from
its handler. A handler that saved a checkpoint itself could run in the middle of an optimizer
step, so the handlers here only record the signal; the trainer checks the record after each
step, writes a checkpoint and raises `Preempted`. The entry point then hands the signal to the
handler that was installed before (submitit's requeue, if any) and exits with its own code.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = tuple(  # SIGUSR1/2 do not exist on Windows
    getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, name)
)


class StopRequest:
    """What the training loop reads: whether, and by which signal, it was asked to stop."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"


class StopSignals(StopRequest):
    """Context manager: while open, the stop signals only set `signum` (main thread only;
    elsewhere Python cannot install handlers and the process keeps its old behaviour)."""

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS):
        super().__init__()
        self.signals = signals
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self.previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous.clear()

    def forward(self) -> None:
        """Give the received signal to the handler that was there before ours, if that was
        Python code (submitit's checkpoint-and-requeue, which then exits the process)."""
        handler = self.previous.get(self.signum) if self.signum is not None else None
        self.__exit__()
        if callable(handler):
            handler(self.signum, None)


class Preempted(Exception):
    """The run stopped on a signal after writing a checkpoint it can be resumed from."""

    def __init__(self, signal_name: str, iteration: int, checkpoint: Path | None):
        self.signal_name, self.iteration, self.checkpoint = signal_name, iteration, checkpoint
        where = f"checkpoint {checkpoint}" if checkpoint else "no new checkpoint (nothing trained)"
        super().__init__(f"stopped by {signal_name} after iteration {iteration}; {where}")
