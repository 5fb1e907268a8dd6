"""Guards: non-finite steps skipped then a clean stop, full disks and unwritable run
directories reported with the previous checkpoint intact, W&B outages survived."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from tiny_run import REPO, TINY_SOURCE_ONLY, compose_tiny, train_in_process

import duda.engine.checkpoint as checkpoint_module
import duda.engine.trainer as trainer_module
import duda.uda.source_only as source_only
from duda.engine.checkpoint import (
    OutputWriteError,
    ensure_writable,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from duda.engine.guard import Diverged, DivergenceGuard
from duda.optim import FiniteAdamW, grads_finite
from duda.uda.method import refused_updates

# -- the pieces ------------------------------------------------------------------------------


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(3, generator=g)), torch.nn.Parameter(torch.ones(2))]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_finite_adamw_refuses_a_non_finite_step_and_matches_adamw_otherwise(bad):
    ours, plain = _params(), _params()
    opt, ref = FiniteAdamW(ours, lr=0.1), torch.optim.AdamW(plain, lr=0.1)
    for p, q in zip(ours, plain, strict=True):
        p.grad, q.grad = torch.full_like(p, 0.5), torch.full_like(q, 0.5)
    opt.step(), ref.step()
    before = [p.detach().clone() for p in ours]
    moments = [opt.state[p]["exp_avg"].clone() for p in ours]

    ours[0].grad = torch.tensor([1.0, bad, 1.0])
    ours[1].grad = torch.ones(2)  # finite, but the step is refused as a whole
    assert not grads_finite(opt)
    opt.step()
    assert opt.skipped_steps == 1 and all(p.grad is None for p in ours)
    assert all(torch.equal(p, b) for p, b in zip(ours, before, strict=True))
    assert all(torch.equal(opt.state[p]["exp_avg"], m) for p, m in zip(ours, moments, strict=True))
    assert float(opt.state[ours[0]]["step"]) == 1.0

    for p, q in zip(ours, plain, strict=True):  # finite again: exactly AdamW's update
        p.grad, q.grad = torch.full_like(p, -0.25), torch.full_like(q, -0.25)
    opt.step(), ref.step()
    assert all(torch.equal(p, q) for p, q in zip(ours, plain, strict=True))


def test_guard_counts_streaks_and_trips_after_n_in_a_row():
    guard = DivergenceGuard(max_in_row=3)
    ok, nan = {"loss/a": torch.tensor(1.0)}, {"loss/a": torch.tensor(float("nan"))}
    steps = [(ok, False), (nan, False), (ok, True), (ok, False), (nan, False), (nan, False)]
    finite = [guard.observe(logs, refused, it) for it, (logs, refused) in enumerate(steps, 1)]
    assert finite == [True, False, False, True, False, False]  # refused update = non-finite
    assert (guard.total, guard.in_row, guard.first_bad, guard.tripped) == (4, 2, 5, False)
    guard.observe({"loss/a": torch.tensor(float("inf")), "other": torch.tensor(1.0)}, False, 7)
    assert guard.tripped and guard.first_bad == 5
    assert not DivergenceGuard(0).tripped  # 0: never stop


def test_refused_updates_are_found_in_sub_methods():
    class Large:
        def __init__(self):
            self.optimizer = FiniteAdamW(_params(), lr=0.1)

        def train_step(self): ...

    class Outer:
        def __init__(self):
            self.optimizer = FiniteAdamW(_params(), lr=0.1)
            self.large = Large()
            self.student = torch.nn.Linear(1, 1)  # modules are not searched

    method = Outer()
    method.optimizer.skipped_steps, method.large.optimizer.skipped_steps = 2, 3
    assert refused_updates(method) == 5
    method.large.optimizer = None  # DUDA retires its large student
    assert refused_updates(method) == 2


# -- non-finite losses in a real run ---------------------------------------------------------


def _nan_losses(monkeypatch, first: int, last: int | None = None) -> None:
    """The source CE of steps first..last (1-based) times NaN: NaN loss and NaN gradients."""
    real, calls = source_only.pixel_ce, []

    def pixel_ce(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        n = len(calls)
        return loss * float("nan") if n >= first and (last is None or n <= last) else loss

    monkeypatch.setattr(source_only, "pixel_ce", pixel_ce)


def test_a_short_run_of_nan_steps_is_skipped_and_counted(tmp_path, monkeypatch):
    _nan_losses(monkeypatch, 3, 4)
    run = tmp_path / "run"
    results = train_in_process(
        run, tmp_path / "data", "trainer.max_nonfinite_steps=3", base=TINY_SOURCE_ONLY
    )
    assert results["iteration"] == 8
    train = [r for r in _records(run) if r["split"] == "train"]
    assert [r["guard/nonfinite_steps"] for r in train] == [0, 2, 0, 0]  # windows of 2 steps
    assert "loss/source" not in train[1] and "loss/source" in train[2]
    # the checkpoint due at 4 (inside the NaN run) was held back
    assert [p.name for p in list_checkpoints(run / "checkpoints")][-3:] == [
        "iter_8.pt",
        "iter_6.pt",
        "iter_2.pt",
    ]
    state = load_checkpoint(run / "checkpoints/iter_6.pt")
    steps = {float(s["step"]) for s in state["method"]["optimizer"]["state"].values()}
    assert steps == {4.0}  # 6 iterations, 2 refused updates
    assert state["method"]["scheduler"]["last_epoch"] == 6  # the schedule keeps time


def test_nan_steps_in_a_row_stop_the_run_with_a_checkpoint_from_before(tmp_path, monkeypatch):
    _nan_losses(monkeypatch, 3)
    run = tmp_path / "run"
    with pytest.raises(Diverged, match=r"3 non-finite steps in a row, iterations 3\.\.5") as err:
        train_in_process(
            run, tmp_path / "data", "trainer.max_nonfinite_steps=3", base=TINY_SOURCE_ONLY
        )
    assert "iter_5.pt" in str(err.value) and "trainer.resume=auto" in str(err.value)
    assert not (run / "results.json").exists()
    before = load_checkpoint(run / "checkpoints/iter_2.pt")["method"]
    stop = load_checkpoint(run / "checkpoints/iter_5.pt", verify=True)
    # weights and Adam moments exactly those after step 2: the skipped steps changed none
    # (their forward passes still moved the BatchNorm statistics, which are not weights)
    stats = ("running_mean", "running_var", "num_batches_tracked")
    weights = {k: v for k, v in stop["method"]["model"].items() if not k.endswith(stats)}
    assert_equal(weights, {k: before["model"][k] for k in weights})
    assert_equal(stop["method"]["optimizer"]["state"], before["optimizer"]["state"])
    assert stop["data"]["source"]["position"] == 5 * 2  # past the bad batches
    assert stop["loop"]["guard"]["in_row"] == 0  # a resumed run counts afresh


def assert_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            assert_equal(a[k], b[k])
        else:
            assert torch.equal(a[k], b[k]), k


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_divergence_through_the_entry_point_is_a_clean_stop(tmp_path):
    """A learning rate of 1e30 overflows the network after one step: every later step is
    non-finite (here BatchNorm statistics too, so no new checkpoint can be trusted)."""
    cmd = [
        sys.executable, "-m", "duda.train", *TINY_SOURCE_ONLY,
        f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}",
        "optimizer.lr=1e30", "scheduler.warmup_iters=0", "trainer.max_nonfinite_steps=3",
        "trainer.checkpoint_interval=1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "error: training diverged: 3 non-finite steps in a row, iterations 2..4" in proc.stderr
    assert "update skipped (3 in a row)" in proc.stdout
    assert "Traceback" not in proc.stderr
    # the checkpoint of iteration 1 predates the divergence and is named; none came after it
    assert f"checkpoint from before the divergence: {tmp_path / 'run/checkpoints/iter_1.pt'}" in (
        proc.stderr
    )
    assert [p.name for p in list_checkpoints(tmp_path / "run/checkpoints")] == ["iter_1.pt"]


# -- full disks and unwritable run directories -----------------------------------------------


def test_a_write_that_fails_on_a_full_disk_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint({"v": torch.ones(2)}, tmp_path / "iter_2.pt", checksum=True)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint({"v": torch.zeros(2)}, path, checksum=True)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path, verify=True)["v"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_2.pt", "iter_2.pt.sha256"]


def test_a_disk_that_fills_inside_torch_save_raises_the_os_error(tmp_path, monkeypatch):
    # torch.save reports a write failing mid-archive as a RuntimeError ("unexpected pos");
    # the trainer's full-disk handling catches OSError, so the OSError must come out
    path = save_checkpoint({"v": torch.ones(2)}, tmp_path / "iter_2.pt", checksum=True)
    real_write = checkpoint_module._HashingWriter.write

    def fills_up(self, data):
        if len(data) > 64:  # small header writes pass: the disk fills mid-archive
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(checkpoint_module._HashingWriter, "write", fills_up)
    with pytest.raises(OSError, match="No space left") as caught:
        save_checkpoint({"v": torch.zeros(4096)}, path, checksum=True)
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path, verify=True)["v"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_2.pt", "iter_2.pt.sha256"]


def test_failed_checkpoint_is_reported_and_training_goes_on(tmp_path, monkeypatch):
    real = trainer_module.save_checkpoint

    def flaky(state, path, checksum=False):
        if path.name == "iter_4.pt":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(state, path, checksum)

    monkeypatch.setattr(trainer_module, "save_checkpoint", flaky)
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"iter_4\.pt.*No space left.*iter_2\.pt stays valid"):
        results = train_in_process(run, tmp_path / "data", base=TINY_SOURCE_ONLY)
    assert results["iteration"] == 8
    names = [p.name for p in list_checkpoints(run / "checkpoints")]
    assert "iter_4.pt" not in names and {"iter_2.pt", "iter_6.pt", "iter_8.pt"} <= set(names)


def test_final_outputs_that_cannot_be_written_end_with_the_checkpoint_to_resume(
    tmp_path, monkeypatch
):
    real = trainer_module.save_checkpoint

    def final_fails(state, path, checksum=False):
        if path.name == "model_final.pt":
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        return real(state, path, checksum)

    monkeypatch.setattr(trainer_module, "save_checkpoint", final_fails)
    with pytest.raises(OutputWriteError, match=r"Disk quota exceeded.*iter_8\.pt is valid"):
        train_in_process(tmp_path / "run", tmp_path / "data", base=TINY_SOURCE_ONLY)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputWriteError, match=r"cannot write to .*locked.*Permission denied"):
            ensure_writable(locked / "run" / "checkpoints")
    finally:
        locked.chmod(0o755)


def test_unwritable_run_directory_stops_before_any_work(tmp_path):
    """`checkpoints` is taken by a file (what root can still not write into): the entry point
    names the path and exits 73 before generating data or building a network."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("not a directory")
    cmd = [
        sys.executable, "-m", "duda.train", *TINY_SOURCE_ONLY,
        f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={run}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 73, proc.stderr[-3000:]
    assert f"error: cannot write to {run / 'checkpoints'}" in proc.stderr
    assert "hydra.run.dir" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()


# -- W&B ---------------------------------------------------------------------------------------


def test_wandb_that_cannot_start_online_falls_back_to_offline(tmp_path, monkeypatch):
    import duda.logging.run_logger as run_logger
    from duda.engine.run import open_run_logger

    class FakeWandb:
        def __init__(self, run_dir, config, project, name, mode, *args):
            if mode == "online":
                raise ConnectionError("api.wandb.ai unreachable")
            self.mode = mode

    monkeypatch.setattr(run_logger, "WandbLogger", FakeWandb)
    cfg = compose_tiny(tmp_path / "data", base=TINY_SOURCE_ONLY)
    cfg.logger.name, cfg.logger.mode = "wandb", "auto"  # an API key is there: online
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    with pytest.warns(UserWarning, match="unreachable"):
        logger, note = open_run_logger(cfg, tmp_path, config, None, True, None)
    assert logger.wandb.mode == "offline"
    assert "unreachable" in note and "falling back to offline" in note
