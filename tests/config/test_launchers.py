"""Launcher presets: what they compose to, the sbatch script SLURM would get, requeue into the
same run directory, the per-GPU pool of `local_gpus`, and real multiruns (slow)."""

import json
import pickle
import time
from pathlib import Path

import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra.core.utils import setup_globals
from hydra.utils import instantiate
from tiny_runs import multirun
from wandb_records import read_offline_run

from duda.config import register_configs
from duda.data.classes import CLASS_NAMES
from hydra_plugins.duda_launchers.local_gpus import run_pool, visible_devices

CONF = Path(__file__).resolve().parents[2] / "conf"
register_configs()


def _compose(overrides: list[str]):
    setup_globals()  # Hydra's `now` resolver, as in a real run
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def _hydra(overrides: list[str]):
    return _compose(overrides).hydra.launcher


def test_slurm_preset_takes_cluster_values_from_the_command_line():
    cfg = _compose(["+experiment=gta_cs_mit_b0", "launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1
    assert launcher.timeout_min == 2880 and launcher.max_num_timeout == 3
    assert cfg.trainer.resume == "auto", "a requeued job must continue from its checkpoint"


def test_local_presets():
    assert _hydra(["launcher=local"])._target_.endswith("BasicLauncher")
    assert _hydra(["launcher=submitit_local"])._target_.endswith("LocalLauncher")
    assert _hydra(["launcher=local_gpus"])._target_.endswith("LocalGpusLauncher")
    assert _compose(["launcher=local_gpus"]).trainer.resume == "auto"
    assert _compose(["launcher=local"]).trainer.resume == "none"


class _Submitted(Exception):
    """Raised instead of calling sbatch."""


def _sbatch_script(tmp_path, monkeypatch, overrides: list[str], jobs: int) -> tuple[str, list]:
    """The sbatch file and pickled jobs hydra-submitit-launcher would submit for `jobs` runs."""
    cfg = _compose(["launcher=slurm", f"hydra.sweep.dir={tmp_path}/sweep", *overrides])
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    scripts = []

    def capture(self, command):
        scripts.append(self._make_submission_file_text(command, "uid"))
        raise _Submitted

    monkeypatch.setattr(submitit.SlurmExecutor, "_submit_command", capture)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # srun
    with pytest.raises(_Submitted):
        launcher.launch([[f"seed={i}"] for i in range(jobs)], initial_job_idx=0)
    pickles = sorted((tmp_path / "sweep/.submitit").rglob("*.pkl"))
    return scripts[0], [pickle.loads(p.read_bytes()) for p in pickles]


def test_slurm_sbatch_script_has_resources_array_and_requeue(tmp_path, monkeypatch):
    script, delayed = _sbatch_script(
        tmp_path,
        monkeypatch,
        [
            "hydra.launcher.partition=gpu",
            "hydra.launcher.account=proj",
            "hydra.launcher.gpus_per_node=2",
            "hydra.launcher.cpus_per_task=10",
            "hydra.launcher.mem_gb=48",
            "hydra.launcher.timeout_min=600",
            "hydra.launcher.array_parallelism=2",
        ],
        jobs=3,
    )
    lines = set(script.splitlines())
    expected = {
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --cpus-per-task=10",
        "#SBATCH --mem=48GB",
        "#SBATCH --time=600",
        "#SBATCH --array=0-2%2",  # 3 jobs, at most 2 at once
        "#SBATCH --signal=USR2@120",  # time to checkpoint and requeue before the kill
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",  # a requeued job appends to its logs
    }
    assert expected <= lines, sorted(expected - lines)
    assert any("submitit.core._submit" in line for line in lines)
    # each job is requeued up to max_num_timeout times and is checkpointable
    assert len(delayed) == 3
    assert all(d._timeout_countdown == 3 for d in delayed)
    assert all(hasattr(d.function, "checkpoint") for d in delayed)


def test_requeued_job_keeps_its_sweep_directory(tmp_path):
    cfg = _compose(["+experiment=synth_duda", "launcher=slurm"])  # sweep dir has ${now:...}
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    first = str(cfg.hydra.sweep.dir)  # resolved (and cached) when the sweep is launched
    resubmission = launcher.checkpoint(["seed=0"], "hydra.sweep.dir", 0, "id", {})
    resubmission.dump(tmp_path / "job.pkl")
    time.sleep(1.1)  # the clock has moved on when the requeued job starts
    requeued = submitit.helpers.DelayedSubmission.load(tmp_path / "job.pkl")
    assert requeued.args[0] == ["seed=0"]
    assert str(requeued.function.config.hydra.sweep.dir) == first


# -- local_gpus ------------------------------------------------------------------------------


def test_visible_devices_from_config_environment_or_torch():
    assert visible_devices([0, 2], {"CUDA_VISIBLE_DEVICES": "5"}) == ["0", "2"]
    assert visible_devices(None, {"CUDA_VISIBLE_DEVICES": "3, 1"}) == ["3", "1"]
    assert visible_devices(None, {"CUDA_VISIBLE_DEVICES": "GPU-ab12,GPU-cd34"}) == [
        "GPU-ab12",
        "GPU-cd34",
    ]
    assert visible_devices(None, {"CUDA_VISIBLE_DEVICES": "0,-1,1"}) == ["0"]  # CUDA stops at -1
    assert visible_devices(None, {"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_devices(None, {}, count_gpus=lambda: 3) == ["0", "1", "2"]


class _FakeJob:
    """Finishes after `polls` calls of done(); records which jobs ran on a slot at once."""

    def __init__(self, name, slot, polls, log):
        self.name, self.slot, self.polls, self.log = name, slot, polls, log
        log.append(("start", name, slot))

    def done(self):
        self.polls -= 1
        if self.polls <= 0 and ("end", self.name, self.slot) not in self.log:
            self.log.append(("end", self.name, self.slot))
        return self.polls <= 0


def test_pool_runs_one_job_per_device_at_a_time():
    log = []
    durations = {"a": 3, "b": 1, "c": 2, "d": 1, "e": 1}
    handles = run_pool(
        list(durations),
        ["0", "1"],
        lambda slot, job: _FakeJob(job, slot, durations[job], log),
        sleep=lambda s: None,
    )
    assert [h.name for h in handles] == list(durations)  # results in job order
    busy, peak = {}, 0
    for event, name, slot in log:
        if event == "start":
            assert slot not in busy, f"{name} started on {slot} while {busy.get(slot)} ran"
            busy[slot] = name
        else:
            assert busy.pop(slot) == name
        peak = max(peak, len(busy))
    assert peak == 2  # both devices in use at once
    assert {slot for event, _, slot in log if event == "start"} == {"0", "1"}


def test_pool_without_devices_runs_jobs_one_at_a_time():
    log = []
    run_pool(["a", "b", "c"], [""], lambda slot, job: _FakeJob(job, slot, 2, log), sleep=id)
    assert [e[:2] for e in log] == [
        ("start", "a"),
        ("end", "a"),
        ("start", "b"),
        ("end", "b"),
        ("start", "c"),
        ("end", "c"),
    ]


# -- real multiruns (slow) ---------------------------------------------------------------------


def _runs(tmp_path: Path) -> list[Path]:
    return sorted(p.parent for p in (tmp_path / "sweep").glob("*/results.json"))


@pytest.mark.slow
def test_two_by_two_multirun_through_submitit_local_logs_offline_wandb(tmp_path):
    """The issue's check: 2 seeds x 2 settings through a launcher; every job has its own
    offline W&B run with per-class IoU and pseudo-label quality, seeds grouped together."""
    proc = multirun(
        tmp_path,
        "+experiment=synth_daformer_mit_b0",
        "seed=0,1",
        "loss.mix=0.5,1.0",
        "hydra/launcher=submitit_local",
        "logger.log_image_interval=2",
        wandb_mode="offline",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(tmp_path)
    assert len(runs) == 4
    groups: dict[str, set] = {}
    for run in runs:
        results = json.loads((run / "results.json").read_text())
        assert results["iteration"] == 2 and len(results["iou"]) == len(CLASS_NAMES)
        assert (run / "env.json").exists() and (run / "panels/iter_2.png").exists()
        wb = read_offline_run(run)
        config = json.loads(json.dumps(wb.config))
        logged = {k for step in wb.history for k in step}
        assert {f"val/iou/{c}" for c in ("road", "sky")} <= logged
        assert {"train/pl_teacher/acc", "train/pl_teacher/mIoU"} <= logged
        assert any(k.startswith("train/pl_teacher/iou/") for k in logged)
        assert wb.summary["mIoU"] == pytest.approx(results["mIoU"])
        assert config["environment"]["git"]["commit"]
        groups.setdefault(wb.group, set()).add((config["seed"], config["loss"]["mix"]))
    assert sorted(sorted(g) for g in groups.values()) == [
        [(0, 0.5), (1, 0.5)],
        [(0, 1.0), (1, 1.0)],
    ], "one W&B group per setting, holding both seeds"


@pytest.mark.slow
def test_local_gpus_pins_each_job_to_its_own_device(tmp_path):
    """Two fake GPU ids: the jobs run in parallel, each seeing exactly one of them."""
    proc = multirun(
        tmp_path,
        "+experiment=synth_source_only",
        "seed=0,1",
        "launcher=local_gpus",
        "trainer.device=cpu",  # the ids are fake; the jobs train on the CPU
        wandb_mode="disabled",
        env={"CUDA_VISIBLE_DEVICES": "0,1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(tmp_path)
    assert len(runs) == 2
    seen = [json.loads((r / "env.json").read_text())["env"]["CUDA_VISIBLE_DEVICES"] for r in runs]
    assert sorted(seen) == ["0", "1"]


@pytest.mark.slow
def test_local_gpus_without_gpus_runs_on_the_cpu_one_at_a_time(tmp_path):
    proc = multirun(
        tmp_path,
        "+experiment=synth_source_only",
        "seed=0,1",
        "launcher=local_gpus",
        wandb_mode="disabled",
        env={"CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no GPU visible" in proc.stdout + proc.stderr
    runs = _runs(tmp_path)
    assert len(runs) == 2
    envs = [json.loads((r / "env.json").read_text())["env"] for r in runs]
    assert all(e["CUDA_VISIBLE_DEVICES"] == "" for e in envs)
    # one at a time: the second job started after the first wrote its results
    first, second = sorted(runs, key=lambda r: (r / "env.json").stat().st_mtime)
    assert (first / "results.json").stat().st_mtime <= (second / "env.json").stat().st_mtime
