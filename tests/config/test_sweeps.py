"""Sweep presets (`+sweep=NAME`) expand into the runs they promise, every run composes, and the
Optuna preset maximises target mIoU on the held-out split (slow: two real trials)."""

import itertools
import json
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tiny_runs import multirun

from duda.config import register_configs
from duda.logging.naming import run_group

CONF = Path(__file__).resolve().parents[2] / "conf"
register_configs()


def _compose_all(runs: list[list[str]]) -> list:
    """Compose several runs under one Hydra initialisation (the slow part)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return [compose(config_name="train", overrides=overrides) for overrides in runs]


def _compose(overrides: list[str], hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=hydra)


def _jobs(base: list[str]) -> list[list[str]]:
    """The runs of a basic-sweeper preset: the cartesian product of its comma lists."""
    params = _compose(base, hydra=True).hydra.sweeper.params
    axes = [[f"{key}={v}" for v in str(values).split(",")] for key, values in params.items()]
    return [list(job) for job in itertools.product(*axes)]


def _plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def test_seeds_sweep_is_three_seeds_of_one_wandb_group():
    base = ["+experiment=synth_duda", "+sweep=seeds"]
    jobs = _jobs(base)
    assert jobs == [["seed=0"], ["seed=1"], ["seed=2"]]
    configs = [_plain(c) for c in _compose_all([base + job for job in jobs])]
    assert len({c["run_name"] for c in configs}) == 3
    assert len({run_group(c) for c in configs}) == 1


def test_students_sweep_covers_every_student_network():
    base = ["+experiment=synth_duda", "+sweep=students"]
    jobs = _jobs(base)
    shipped = sorted(p.stem for p in (CONF / "model/student").glob("*.yaml"))
    assert sorted(job[0].split("=")[1] for job in jobs) == shipped
    configs = _compose_all([base + job for job in jobs])
    files = [yaml.safe_load((CONF / "model/student" / f"{s}.yaml").read_text()) for s in shipped]
    expected = {f["backbone"]["name"] for f in files}  # `# @package model` files
    assert {c.model.backbone.name for c in configs} == expected
    teacher = _compose(["+experiment=synth_duda"]).model.large
    assert all(c.model.large == teacher for c in configs)  # the same teacher for every student
    assert len({run_group(_plain(c)) for c in configs}) == len(shipped)


def test_loss_weight_grid_is_every_pair_with_named_runs():
    base = ["+experiment=synth_duda", "+sweep=duda_loss_weights"]
    jobs = _jobs(base)
    assert len(jobs) == 9
    seen = set()
    for job, cfg in zip(jobs, _compose_all([base + job for job in jobs]), strict=True):
        wanted = dict(o.split("=") for o in job)
        assert cfg.loss.kd == float(wanted["loss.kd"])
        assert cfg.loss.inconsistency == float(wanted["loss.inconsistency"])
        seen.add(cfg.run_name)
        assert f"-kd{cfg.loss.kd}-inc{cfg.loss.inconsistency}_" in cfg.run_name
    assert len(seen) == 9


def _first_value(spec: str) -> str:
    """A value of an Optuna search-space entry: `interval(a, b)` -> a, `choice(x, y)` -> x."""
    inner = spec[spec.index("(") + 1 : spec.rindex(")")]
    return inner.split(",")[0].strip()


def test_optuna_preset_maximises_mIoU_on_the_held_out_split():
    base = ["+experiment=synth_duda", "+hparams_search=duda_optuna"]
    cfg = _compose(base, hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert str(sweeper.direction) in ("maximize", "Direction.maximize")
    assert sweeper.sampler.seed is not None  # a search can be repeated
    # scored on the labelled target training images, never on the val split one reports
    assert cfg.dataset.target.val_split == cfg.dataset.target.train_split == "train"
    plain = _compose(["+experiment=synth_duda"])
    assert plain.dataset.target.val_split == "val"
    # every searched key exists in the schema and takes the searched values
    values = {key: _first_value(spec) for key, spec in sweeper.params.items()}
    trials = _compose_all([base + [f"{key}={value}"] for key, value in values.items()])
    for (key, value), trial in zip(values.items(), trials, strict=True):
        assert float(OmegaConf.select(trial, key)) == float(value)


@pytest.mark.slow
def test_two_optuna_trials_return_their_mIoU(tmp_path):
    proc = multirun(
        tmp_path,
        "+experiment=synth_duda",
        "+hparams_search=duda_optuna",
        "hydra.sweeper.n_trials=2",
        "model.large.backbone.name=mit_b0",
        "distill.pre_iters=1",
        "logger=none",
        wandb_mode="disabled",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = sorted((tmp_path / "sweep").glob("*/results.json"))
    assert len(trials) == 2
    results = [json.loads(t.read_text()) for t in trials]
    # the held-out split: all 6 labelled target training images, not the 2 val images
    assert all(r["eval_images"] == 6 for r in results)
    best = yaml.safe_load((tmp_path / "sweep/optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(r["mIoU"] for r in results))
    assert set(best["best_params"]) == {
        "loss.kd",
        "loss.inconsistency",
        "distill.tau",
        "uda.pseudo_threshold",
    }
