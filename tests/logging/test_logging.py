"""W&B mode resolution, the never-fatal guard, and the local JSON records."""

import json
import math

import pytest

from duda.logging.local import JsonlWriter, write_json
from duda.logging.wandb_logger import WandbLogger, has_wandb_api_key, resolve_mode


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
