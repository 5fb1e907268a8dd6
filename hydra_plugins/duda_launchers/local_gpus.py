"""`hydra/launcher=local_gpus`: the jobs of a sweep on this machine's GPUs, one per GPU at a time.

Each job is its own process (submitit's local executor, as `submitit_local`), started with
`CUDA_VISIBLE_DEVICES` set to its one device, so it sees a single GPU as `cuda:0` whatever
`trainer.device` says; when a job ends, the next waiting one takes its GPU. With no GPU visible
the jobs run one at a time on the CPU, after a warning.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

log = logging.getLogger(__name__)
T = TypeVar("T")
CPU = ""  # the CUDA_VISIBLE_DEVICES of a CPU-only job


def _torch_gpu_count() -> int:
    import torch  # only when neither the config nor the environment lists devices

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def visible_devices(
    configured: Sequence[Any] | None,
    environ: Mapping[str, str],
    count_gpus: Callable[[], int] = _torch_gpu_count,
) -> list[str]:
    """The device ids to pin jobs to: the configured list, else CUDA_VISIBLE_DEVICES (ids,
    UUIDs or MIG names; CUDA stops reading at -1), else 0…n-1 for the n GPUs torch sees."""
    if configured is not None:
        return [str(d) for d in configured]
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count_gpus())]
    devices = []
    for item in (d.strip() for d in listed.split(",")):
        if not item or item == "-1":
            break
        devices.append(item)
    return devices


def run_pool(
    jobs: Sequence[T],
    slots: Sequence[str],
    submit: Callable[[str, T], Any],
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Any]:
    """Start each job on a free slot, at most one job per slot at a time, until all are done.

    `submit(slot, job)` starts a job and returns a handle with `done()`; the handles come back
    in job order.
    """
    pending = deque(enumerate(jobs))
    free = deque(slots)
    running: dict[int, tuple[Any, str]] = {}
    handles: list[Any] = [None] * len(jobs)
    while pending or running:
        while pending and free:
            index, job = pending.popleft()
            slot = free.popleft()
            running[index] = (submit(slot, job), slot)
        finished = [i for i, (handle, _) in running.items() if handle.done()]
        for index in finished:
            handles[index], slot = running.pop(index)
            free.append(slot)
        if not finished:
            sleep(poll_s)
    return handles


class LocalGpusLauncher(BaseSubmititLauncher):
    _EXECUTOR = "local"

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        params = self.params
        devices = visible_devices(params.get("gpus"), os.environ)
        if not devices:
            log.warning(
                f"local_gpus: no GPU visible; running the {len(job_overrides)} jobs one at a "
                "time on the CPU"
            )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"local_gpus: {len(job_overrides)} jobs on {devices or ['cpu']} in {sweep_dir}")
        executor = submitit.LocalExecutor(
            folder=params["submitit_folder"], max_num_timeout=params["max_num_timeout"]
        )
        executor.update_parameters(
            timeout_min=params["timeout_min"],
            tasks_per_node=1,
            nodes=1,
            stderr_to_stdout=params["stderr_to_stdout"],
        )

        def submit(device: str, job: tuple[int, list[str]]) -> Any:
            index, overrides = job
            log.info(f"\t#{index} on {device or 'cpu'}: {' '.join(filter_overrides(overrides))}")
            # Set directly, not through update_parameters: its check accepts integer ids only,
            # but CUDA_VISIBLE_DEVICES may hold GPU UUIDs or MIG names.
            executor.parameters.update(
                gpus_per_node=1 if device else 0, visible_gpus=(device,) if device else ()
            )
            return executor.submit(
                self, overrides, "hydra.sweep.dir", index, f"job_id_for_{index}",
                Singleton.get_state(),
            )  # fmt: skip

        jobs = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        handles = run_pool(jobs, devices or [CPU], submit, params["poll_s"])
        return [handle.results()[0] for handle in handles]
