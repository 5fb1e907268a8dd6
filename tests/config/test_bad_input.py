"""Bad input stops before any work, with the key and the way out named: unknown keys and
wrong types, incompatible combinations, weights or checkpoints of another architecture."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from duda.config import ConfigError, register_configs, validate
from duda.preflight import check_combinations

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))

register_configs()


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.resum=auto", "resum"),  # a misspelt key
        ("trainer.keep_checkpoints=many", "keep_checkpoints"),  # a string for an int
        ("trainer.max_nonfinite_steps=1.5", "max_nonfinite_steps"),
        ("model.backbone.nam=mit_b1", "nam"),
    ],
)
def test_unknown_keys_and_wrong_types_name_the_key(override, key):
    with pytest.raises(ConfigCompositionException) as err:
        _compose("+experiment=synth_source_only", override)
    assert key in str(err.value) + str(err.value.__cause__)


def test_key_added_with_plus_is_named():
    with pytest.raises(ConfigError, match="resume_from"):
        validate(_compose("+experiment=synth_source_only", "+trainer.resume_from=x"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_shipped_experiment_passes_the_combination_checks(name):
    check_combinations(_compose(f"+experiment={name}"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["+experiment=synth_daformer_mit_b0", "uda=duda", "distill=duda"],
            "uda=duda needs the large network.*model/large=",
        ),
        (["+experiment=synth_daformer_mit_b0", "distill=duda"], "distill=duda needs uda=duda"),
        (["+experiment=synth_duda", "distill=none"], "uda=duda needs distill=duda"),
        (["+experiment=synth_duda", "uda.base=dacs"], r"uda.base=dacs: expected one of"),
        (["+experiment=synth_duda", "distill.pre_iters=2000"], "distill.pre_iters=2000"),
        (["+experiment=synth_source_only", "dataset.num_classes=16"], "num_classes=16"),
        (
            ["+experiment=synth_source_only", "dataset=syn_cs", "dataset.metrics=[mIoU19]"],
            "synthia.*mIoU16",
        ),
        (["+experiment=synth_source_only", "dataset.metrics=[]"], "dataset.metrics is empty"),
        (["+experiment=synth_source_only", "trainer.resume=/no/such.pt"], "no such file"),
        (["+experiment=synth_source_only", "trainer.keep_checkpoints=-1"], "keep_checkpoints"),
        (["+experiment=synth_source_only", "trainer.max_nonfinite_steps=-1"], "nonfinite"),
        (["+experiment=synth_source_only", "trainer.max_iters=0"], "max_iters=0"),
    ],
)
def test_incompatible_combinations_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_combinations(_compose(*overrides))


def test_synthia_with_its_subset_metric_first_is_accepted():
    check_combinations(_compose("+experiment=synth_source_only", "dataset=syn_cs"))


def _run(tmp_path: Path, *overrides: str):
    """`run_training` in this process; it must stop before generating the benchmark."""
    from duda.engine.run import run_training

    cfg = _compose(
        "+experiment=synth_source_only", "logger=none", "trainer.threads=1",
        f"paths.data_dir={tmp_path / 'data'}", *overrides,
    )  # fmt: skip
    threads = torch.get_num_threads()
    try:
        return run_training(cfg, tmp_path / "run")
    finally:
        torch.set_num_threads(threads)


def test_student_weights_of_another_architecture_stop_before_the_data(tmp_path):
    from duda.models import build_segmentor

    head = {"name": "segformer", "embed_dim": 32}
    b1 = build_segmentor({"name": "mit_b1", "pretrained": None}, head, 19)
    torch.save(b1.backbone.state_dict(), tmp_path / "mit_b1.pth")
    with pytest.raises(ConfigError, match=r"(?s)mit_b1\.pth does not match.*shape mismatches"):
        _run(tmp_path, f"model.backbone.pretrained={tmp_path / 'mit_b1.pth'}")
    assert not (tmp_path / "data").exists()


def test_resuming_a_checkpoint_of_another_architecture_stops_before_the_data(tmp_path):
    from duda.engine.checkpoint import save_checkpoint
    from duda.engine.resume import FORMAT

    other = _compose("+experiment=synth_source_only", "model/backbone=mit_b1")
    state = {"format": FORMAT, "iteration": 2, "method": {}, "loop": {}, "data": {}, "rng": {}}
    state["config"] = OmegaConf.to_container(other, resolve=True, enum_to_str=True)
    save_checkpoint(state, tmp_path / "run/checkpoints/iter_2.pt", checksum=True)
    with pytest.raises(ConfigError, match=r"model\.backbone\.name=mit_b1 there, mit_b0 here"):
        _run(tmp_path, "trainer.resume=auto")
    assert not (tmp_path / "data").exists()


def test_entry_point_rejects_a_combination_in_one_line_before_any_work(tmp_path):
    cmd = [
        sys.executable, "-m", "duda.train", "+experiment=synth_daformer_mit_b0", "uda=duda",
        "distill=duda", f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'r'}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: uda=duda needs the large network")
    assert "Traceback" not in proc.stderr and not (tmp_path / "data").exists()
