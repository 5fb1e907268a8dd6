"""Structured config of the `local_gpus` launcher, registered as `hydra/launcher=local_gpus`."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf


@dataclass
class LocalGpusConf(BaseQueueConf):
    _target_: str = "hydra_plugins.duda_launchers.local_gpus.LocalGpusLauncher"
    # Device ids to spread the jobs over, one job per device at a time. None: the ids in
    # CUDA_VISIBLE_DEVICES when set, else every GPU torch sees. None visible: one job at a time
    # on the CPU.
    gpus: list[str] | None = None
    timeout_min: int = 2880
    max_num_timeout: int = 3  # local restarts after a timeout (jobs resume with trainer.resume)
    poll_s: float = 1.0  # how often finished jobs are looked for


ConfigStore.instance().store(
    group="hydra/launcher", name="local_gpus", node=LocalGpusConf(), provider="duda"
)
