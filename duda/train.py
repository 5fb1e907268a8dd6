"""`python -m duda.train +experiment=NAME [overrides]`: compose the config, build, train.

Exit status: 0 finished; 2 bad input (config, data, weights, an unusable resume checkpoint),
named in one line; 3 diverged (non-finite steps, see `trainer.max_nonfinite_steps`); 73 the run
directory cannot take the outputs; 75 stopped by SIGTERM/SIGUSR1/SIGUSR2 after writing a
checkpoint: rerun with `trainer.resume=auto` in the same `hydra.run.dir` to continue.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations phones home at import

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from duda.config import ConfigError, register_configs, validate  # noqa: E402
from duda.data.datasets import BadSampleError  # noqa: E402
from duda.preflight import check_combinations  # noqa: E402

register_configs()
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_CANNOT_WRITE, EXIT_PREEMPTED = 2, 3, 73, 75


def _fail(message: object, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        validate(cfg)
        check_combinations(cfg)
    except ConfigError as err:
        _fail(err, EXIT_BAD_INPUT)

    # torch and friends load after the config is known to be good
    from duda.engine.checkpoint import OutputWriteError
    from duda.engine.guard import Diverged
    from duda.engine.preemption import Preempted, StopSignals
    from duda.engine.run import run_training
    from duda.logging import collect_environment, has_wandb_api_key

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    print(f"Run directory: {run_dir}")
    # Installed before anything is built, so that a signal during set-up is not lost (loader
    # workers shield themselves from the signals a cluster sends the whole job: loaders.py).
    with StopSignals() as stop:
        try:
            results = run_training(
                cfg,
                run_dir,
                wandb_env_mode=os.environ.get("WANDB_MODE"),
                has_wandb_key=has_wandb_api_key(os.environ, Path.home()),
                environment=collect_environment(os.environ),
                stop=stop,
            )
        # Bad settings, missing datasets, statistics files or weights (FileNotFoundError and
        # its subclasses DatasetLayoutError, RCSStatsError) and unreadable samples end with
        # the message alone.
        except (ConfigError, FileNotFoundError, BadSampleError) as err:
            _fail(err, EXIT_BAD_INPUT)
        except OutputWriteError as err:
            _fail(err, EXIT_CANNOT_WRITE)
        except Diverged as err:
            _fail(err, EXIT_DIVERGED)
        except Preempted as err:
            print(f"{err}. Continue with: trainer.resume=auto hydra.run.dir={run_dir}")
            stop.forward()  # e.g. submitit's handler, which requeues the job
            sys.exit(EXIT_PREEMPTED)
    print(f"Results: {run_dir / 'results.json'}")
    return results["mIoU"]  # the value Hydra sweepers (e.g. Optuna) optimise


if __name__ == "__main__":
    main()
