"""W&B: modes, the never-fatal guard, name/group/tags, environment, what an offline run
records; the local JSON records."""

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from wandb_records import read_offline_run

from duda.config import register_configs
from duda.data.classes import CLASS_NAMES
from duda.logging import run_logger
from duda.logging.environment import collect_environment
from duda.logging.local import JsonlWriter, write_json
from duda.logging.naming import run_group, run_tags
from duda.logging.run_logger import artifact_name, build_run_logger
from duda.logging.wandb_logger import (
    WandbLogger,
    has_wandb_api_key,
    persistent_run_id,
    resolve_mode,
)

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
register_configs()


@pytest.mark.parametrize(
    "requested,env,key,expected",
    [
        ("auto", None, True, "online"),
        ("auto", None, False, "offline"),
        ("auto", "disabled", True, "disabled"),
        ("auto", "dryrun", True, "offline"),
        ("offline", None, True, "offline"),
        ("online", None, False, "online"),
    ],
)
def test_resolve_mode(requested, env, key, expected):
    assert resolve_mode(requested, env, key) == expected


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="expected auto, online, offline or disabled"):
        resolve_mode("sometimes", None, False)


def test_api_key_from_env_or_netrc(tmp_path):
    assert has_wandb_api_key({"WANDB_API_KEY": "x" * 40}, tmp_path)
    assert not has_wandb_api_key({}, tmp_path)
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert has_wandb_api_key({}, tmp_path)


def test_offline_run_lands_in_run_dir_and_failures_are_not_fatal(tmp_path):
    logger = WandbLogger(tmp_path, {"a": 1}, "duda-test", "unit", "offline")
    logger.log({"x": 1.0}, step=1)
    logger.log_iou("val", {"road": 50.0, "sky": math.nan}, step=1)

    def broken(*args, **kwargs):
        raise ConnectionError("service down")

    logger.run.log = broken
    with pytest.warns(UserWarning, match="service down"):
        logger.log({"x": 2.0}, step=2)
    logger.log({"x": 3.0}, step=3)  # silently off now, no second warning, no exception
    logger.finish()
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_json_records_have_no_nan(tmp_path):
    write_json(tmp_path / "r.json", {"iou": {"road": 1.0, "train": math.nan}})
    assert json.loads((tmp_path / "r.json").read_text())["iou"]["train"] is None
    w = JsonlWriter(tmp_path / "m.jsonl")
    w.write({"i": 1})
    w.write({"i": 2, "v": math.inf})
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert lines == [{"i": 1}, {"i": 2, "v": None}]


# -- run name, group, tags -------------------------------------------------------------------


def _config(*overrides: str) -> dict:
    """A composed, resolved run config, as run_training hands it to the logger."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def test_group_joins_seeds_and_separates_settings():
    s0 = _config("+experiment=synth_duda", "seed=0")
    s1 = _config("+experiment=synth_duda", "seed=1", "trainer.threads=1", "paths.data_dir=/x")
    other = _config("+experiment=synth_duda", "seed=0", "loss.kd=0.5")  # same run name
    assert s0["run_name"] != s1["run_name"] and s0["run_name"] == other["run_name"]
    assert run_group(s0) == run_group(s1)
    assert run_group(s0) != run_group(other)
    assert run_group(s0).startswith("synth_day_duda_segformer_mit_b0-")
    assert "_s0" not in run_group(s0)


def test_tags_name_each_component_that_is_on():
    config = _config("+experiment=synth_duda", "logger.tags=[mine]")
    large = config["model"]["large"]
    duda = run_tags(config)
    assert {"uda:duda", "distill:duda", "base:daformer", "student:mit_b0+segformer"} <= set(duda)
    assert {"inconsistency", "pre-adaptation"} <= set(duda)
    assert "kd" not in duda  # synth_duda switches the soft KD term off (loss.kd: 0)
    assert f"large:{large['backbone']['name']}+{large['head']['name']}" in duda
    assert "kd-schedule:linear" in duda and duda[-1] == "mine"
    assert "fd" not in duda  # the synthetic experiments switch feature distance off
    soft_kd = run_tags(_config("+experiment=synth_duda", "+ablation=soft_kd"))
    assert "kd" in soft_kd and "ablation-soft_kd" in soft_kd
    no_kd = run_tags(_config("+experiment=gta_cs_mit_b0", "+ablation=no_kd"))
    assert "kd" not in no_kd and "ablation-no_kd" in no_kd
    assert "kd" in run_tags(_config("+experiment=gta_cs_mit_b0"))
    mic = run_tags(_config("+experiment=synth_mic_mit_b0"))
    assert "mic" in mic and not any(t.startswith("distill:") for t in mic)
    assert run_tags(_config("+experiment=synth_source_only"))[:3] == [
        "dataset:synth_day",
        "uda:source_only",
        "student:mit_b0+segformer",
    ]


# -- environment -------------------------------------------------------------------------------


def test_environment_names_commit_packages_and_devices():
    env = collect_environment({"CUDA_VISIBLE_DEVICES": "3", "HOME": "/secret", "PATH": "/bin"})
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    assert env["git"]["commit"] == head.stdout.strip()
    assert isinstance(env["git"]["dirty"], bool)
    assert env["packages"]["torch"] == torch.__version__.split("+")[0]
    assert env["packages"]["hydra-core"].startswith("1.3")
    assert env["env"] == {"CUDA_VISIBLE_DEVICES": "3"}  # nothing else from the environment
    assert env["gpu"]["count"] == torch.cuda.device_count() == len(env["gpu"]["names"])
    json.dumps(env)  # env.json must be writable


def test_environment_outside_a_git_checkout(tmp_path):
    assert collect_environment({}, repo=tmp_path)["git"] == {
        "commit": None,
        "branch": None,
        "dirty": None,
    }


# -- the run logger end to end, offline --------------------------------------------------------

LOGGER = {"name": "wandb", "project": "duda-test", "entity": None, "mode": "auto"}


def _logger_cfg(**kw):
    return OmegaConf.create({**LOGGER, "group": None, "tags": [], **kw})


def _eval_result(road: float) -> dict:
    iou = {name: math.nan for name in CLASS_NAMES} | {"road": road, "sky": 10.0}
    return {"mIoU": (road + 10.0) / 2, "aAcc": 80.0, "iou": iou}


def test_offline_run_records_config_environment_metrics_summary_and_artifact(tmp_path):
    config = _config("+experiment=synth_duda")
    env = {"git": {"commit": "abc", "dirty": False}, "packages": {"torch": "x"}}
    logger, note = build_run_logger(
        _logger_cfg(log_checkpoint=True), tmp_path, config, None, False, env
    )
    assert "no API key" in note and f"wandb sync {tmp_path}/wandb/offline-run-*" in note
    logger.log_train({"loss/total": 1.5, "pl_teacher/mIoU": 12.0, "pl_teacher/iou/road": 30.0}, 1)
    logger.log_eval(_eval_result(40.0), step=2)
    (tmp_path / "model_final.pt").write_bytes(b"weights")
    logger.log_results({**_eval_result(50.0), "iteration": 2, "model": "mit_b0+segformer"})
    logger.finish()

    assert json.loads((tmp_path / "env.json").read_text()) == env
    assert json.loads((tmp_path / "results.json").read_text())["iou"]["train"] is None
    run = read_offline_run(tmp_path)
    assert run.name == config["run_name"] and run.group == run_group(config)
    assert "distill:duda" in run.tags
    assert run.config["environment"] == env and run.config["distill"] == config["distill"]
    logged = {k for step in run.history for k in step}
    assert {"train/pl_teacher/mIoU", "train/pl_teacher/iou/road", "val/mIoU"} <= logged
    assert {"val/iou/road", "val/iou/sky", "val/iou_table/_type"} <= logged
    assert "val/iou/train" not in logged  # absent classes are not logged as NaN
    assert run.summary["mIoU"] == 30.0 and run.summary["iou/road"] == 50.0
    assert (artifact_name(config["run_name"]), "model") in run.artifacts


def test_no_artifact_unless_asked(tmp_path):
    logger, _ = build_run_logger(_logger_cfg(), tmp_path, _config(), "offline", False)
    (tmp_path / "model_final.pt").write_bytes(b"weights")
    logger.log_results({**_eval_result(50.0), "iteration": 2, "model": "m"})
    logger.finish()
    assert read_offline_run(tmp_path).artifacts == []


def test_disabled_and_none_write_local_files_only(tmp_path):
    for name, mode, where in (("wandb", "disabled", "a"), ("none", "auto", "b")):
        run_dir = tmp_path / where
        run_dir.mkdir()
        logger, note = build_run_logger(
            _logger_cfg(name=name, mode=mode), run_dir, _config(), None, True, {"x": 1}
        )
        assert logger.wandb is None and "metrics.jsonl" in note
        logger.log_eval(_eval_result(1.0), step=1)
        logger.finish()
        assert (run_dir / "metrics.jsonl").exists() and (run_dir / "env.json").exists()
        assert not (run_dir / "wandb").exists()


def test_a_wandb_that_cannot_start_does_not_stop_training(tmp_path, monkeypatch):
    import wandb

    def refuse(**kwargs):
        raise wandb.errors.CommError("api.wandb.ai unreachable")

    monkeypatch.setattr(wandb, "init", refuse)
    with pytest.warns(UserWarning, match="unreachable"):
        logger, note = build_run_logger(_logger_cfg(mode="online"), tmp_path, _config(), None, True)
    assert logger.wandb is None and "failed to start" in note
    logger.log_train({"loss/total": 1.0}, step=1)  # the local record still works
    assert (tmp_path / "metrics.jsonl").exists()


def test_online_mode_goes_to_wandb_init(tmp_path, monkeypatch):
    import wandb

    calls = []

    class FakeRun:
        url = "https://wandb.ai/me/duda-test/runs/abc"

        def log(self, *a, **k):
            calls.append(("log", a, k))

        def finish(self):
            calls.append(("finish",))

    def fake_init(**kwargs):
        calls.append(("init", kwargs))
        return FakeRun()

    monkeypatch.setattr(wandb, "init", fake_init)
    config = _config("seed=3")
    logger, note = build_run_logger(_logger_cfg(), tmp_path, config, None, True)
    assert note == f"W&B online: {FakeRun.url}"
    init = calls[0][1]
    assert init["mode"] == "online" and init["dir"] == str(tmp_path)
    assert init["name"] == config["run_name"] and init["group"] == run_group(config)
    assert (
        init["resume"] == "allow" and init["id"] == (tmp_path / "wandb/run_id").read_text().strip()
    )
    logger.log_train({"loss/total": 1.0}, step=1)
    logger.finish()
    assert ("log", ({"train/loss/total": 1.0},), {"step": 1}) in calls and calls[-1] == ("finish",)


def test_run_id_is_kept_per_run_directory(tmp_path):
    first = persistent_run_id(tmp_path / "a")
    assert persistent_run_id(tmp_path / "a") == first  # a requeued job continues the run
    assert persistent_run_id(tmp_path / "b") != first


def test_panels_every_interval_locally_and_in_wandb(tmp_path, monkeypatch):
    seen = []
    views = {
        "image": np.zeros((2, 4, 4, 3), np.uint8),
        "prediction": np.ones((2, 4, 4), np.uint8),
    }
    monkeypatch.setattr(
        run_logger, "target_views", lambda m, t, it, count: seen.append((it, count)) or views
    )
    logger, _ = build_run_logger(
        _logger_cfg(log_image_interval=2, log_image_count=1), tmp_path, _config(), "offline", False
    )
    for step in range(1, 6):
        logger.log_panels(method=None, target={}, step=step)
    logger.finish()
    assert seen == [(1, 1), (3, 1)]  # after steps 2 and 4, with train_step's 0-based index
    assert sorted(p.name for p in (tmp_path / "panels").iterdir()) == ["iter_2.png", "iter_4.png"]
    history = read_offline_run(tmp_path).history
    steps = [s["_step"] for s in history if any(k.startswith("images/panel") for k in s)]
    assert steps == [2, 4]
    masks = [s for s in history if any(k.startswith("images/target") for k in s)]
    assert len(masks) == 2 and any("prediction" in json.dumps(s) for s in masks)
