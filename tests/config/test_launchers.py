"""Launcher presets compose into the right Hydra launcher; submitit runs jobs as processes."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from tiny_runs import multirun

from duda.config import register_configs

CONF = Path(__file__).resolve().parents[2] / "conf"
register_configs()


def _hydra(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    return cfg.hydra.launcher


def test_slurm_preset_takes_cluster_values_from_the_command_line():
    launcher = _hydra(
        ["+experiment=gta_cs_mit_b0", "launcher=slurm", "hydra.launcher.partition=gpu"]
    )
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1
    assert launcher.timeout_min == 2880 and launcher.max_num_timeout == 3


def test_local_presets():
    assert _hydra(["launcher=local"])._target_.endswith("BasicLauncher")
    assert _hydra(["launcher=submitit_local"])._target_.endswith("LocalLauncher")


@pytest.mark.slow
def test_two_job_multirun_through_submitit_local(tmp_path):
    proc = multirun(
        tmp_path,
        "+experiment=synth_source_only",
        "seed=0,1",
        "launcher=submitit_local",
        wandb_mode="offline",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted((tmp_path / "sweep").glob("*_synth_day_source_only_*"))
    assert [r.name.split("_")[0] for r in runs] == ["0", "1"]
    for run in runs:
        assert json.loads((run / "results.json").read_text())["iteration"] == 2
        assert list((run / "wandb").glob("offline-run-*")), "each job has its own W&B run"
