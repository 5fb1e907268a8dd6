"""Exact resume: checkpoints that verify themselves, loaders that restart where they stopped,
and runs killed at random iterations that end exactly as the uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_run import (
    MAX_ITERS,
    PRE_ITERS,
    assert_same,
    newest_checkpoint,
    records,
    start_train,
    train_in_process,
)

from duda.bench import accuracy
from duda.config import ConfigError
from duda.data.loaders import derive_seed, train_loader
from duda.engine.checkpoint import (
    CorruptCheckpoint,
    checksum_path,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from duda.engine.preemption import StopSignals
from duda.engine.resume import (
    FORMAT,
    check_resumable,
    find_resume_point,
    rng_state,
    set_rng_state,
    truncate_metrics,
)

# -- checkpoints that verify themselves ------------------------------------------------------


def _resumable(iteration: int) -> dict:
    keys = ("method", "config", "loop", "data", "rng")
    return {"format": FORMAT, "iteration": iteration, **{k: {"i": iteration} for k in keys}}


def _two_checkpoints(tmp_path: Path) -> tuple[Path, Path]:
    old = save_checkpoint(_resumable(2), tmp_path / "iter_2.pt", checksum=True)
    new = save_checkpoint(_resumable(4), tmp_path / "iter_4.pt", checksum=True)
    return old, new


def test_checksum_file_matches_sha256sum_format(tmp_path):
    import hashlib

    path = save_checkpoint({"w": torch.arange(3.0)}, tmp_path / "iter_1.pt", checksum=True)
    digest, name = checksum_path(path).read_text().split()
    assert name == "iter_1.pt" and digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_truncated_newest_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path):
    old, new = _two_checkpoints(tmp_path)
    data = new.read_bytes()
    new.write_bytes(data[: len(data) // 2])  # a write cut short by a full disk
    with pytest.warns(UserWarning, match="iter_4.pt.*truncated or damaged.*previous"):
        point = find_resume_point(tmp_path, "auto")
    assert point.path == old and point.iteration == 2


def test_flipped_byte_is_caught_by_the_checksum(tmp_path):
    old, new = _two_checkpoints(tmp_path)
    data = bytearray(new.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte wrong: only a checksum sees this
    new.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint, match="does not match"):
        load_checkpoint(new, verify=True)
    with pytest.warns(UserWarning, match="iter_4.pt"):
        assert find_resume_point(tmp_path, "auto").path == old


def test_checkpoint_without_its_checksum_file_is_not_used(tmp_path):
    old, new = _two_checkpoints(tmp_path)
    checksum_path(new).unlink()  # killed between writing the checkpoint and its checksum
    with pytest.warns(UserWarning, match="no iter_4.pt.sha256"):
        assert find_resume_point(tmp_path, "auto").path == old


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_that_would_run_code_is_refused_not_run(tmp_path, capsys):
    old, new = _two_checkpoints(tmp_path)
    save_checkpoint({**_resumable(6), "method": Payload()}, tmp_path / "iter_6.pt", checksum=True)
    with pytest.warns(UserWarning, match="iter_6.pt holds objects that would run code"):
        assert find_resume_point(tmp_path, "auto").path == new
    assert "pwned" not in capsys.readouterr().out


def test_resume_auto_without_checkpoints_starts_fresh_and_a_bad_path_is_an_error(tmp_path):
    assert find_resume_point(tmp_path / "checkpoints", "auto") is None
    assert find_resume_point(tmp_path, "none") is None
    with pytest.raises(ConfigError, match="trainer.resume=.*nope.pt"):
        find_resume_point(tmp_path, str(tmp_path / "nope.pt"))
    save_checkpoint({"iteration": 3, "method": {}}, tmp_path / "old.pt")  # an older format
    with pytest.raises(ConfigError, match="not a resumable training checkpoint"):
        find_resume_point(tmp_path, str(tmp_path / "old.pt"))


def test_only_the_newest_k_checkpoints_are_kept(tmp_path):
    for it in (2, 4, 6, 8):
        save_checkpoint(_resumable(it), tmp_path / f"iter_{it}.pt", checksum=True)
    (tmp_path / "iter_10.pt").write_bytes(b"half")  # newer but incomplete: not counted
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["iter_10.pt", "iter_8.pt", "iter_6.pt"]
    assert not checksum_path(tmp_path / "iter_4.pt").exists()
    prune_checkpoints(tmp_path, keep=0)  # 0 keeps everything
    assert len(list_checkpoints(tmp_path)) == 3


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = save_checkpoint({"rng": rng_state()}, tmp_path / "r.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) == expected


def test_metrics_after_the_checkpoint_are_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"iteration": i, "split": "train"}) for i in (1, 2, 3, 4)]
    path.write_text("\n".join(lines) + '\n{"iteration": 5, "spl')  # killed mid-line
    assert truncate_metrics(path, 2) == 3
    assert [json.loads(x)["iteration"] for x in path.read_text().splitlines()] == [1, 2]


def test_another_architecture_is_refused_other_changes_are_listed():
    saved = {"model": {"backbone": {"name": "mit_b1"}, "large": None}, "optimizer": {"lr": 1}}
    current = {"model": {"backbone": {"name": "mit_b0"}, "large": None}, "optimizer": {"lr": 1}}
    with pytest.raises(ConfigError, match=r"model\.backbone\.name=mit_b1 there, mit_b0 here"):
        check_resumable(saved, current)
    large = {"backbone": {"name": "mit_b5"}, "head": {"name": "daformer"}}
    with_large = {"model": {"backbone": {"name": "mit_b0"}, "large": large}}
    with pytest.raises(ConfigError, match="model.large"):
        check_resumable(saved | with_large, current)
    moved = {"trainer": {"num_workers": 8, "resume": "auto"}, "optimizer": {"lr": 2}}
    changes = check_resumable(
        {**current, "trainer": {"num_workers": 0, "resume": "none"}}, {**current, **moved}
    )
    assert changes == ["optimizer.lr: 1 -> 2"]  # worker count and resume are incidental


def test_stop_signals_set_a_flag_and_hand_the_signal_on():
    seen = []

    def theirs(signum, frame):
        seen.append(signum)

    previous = signal.signal(signal.SIGUSR1, theirs)
    try:
        with StopSignals() as stop:
            assert not stop.requested
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.01)
            assert stop.requested and stop.name == "SIGUSR1" and seen == []
            stop.forward()  # after the checkpoint: the old handler (e.g. submitit's) runs
        assert seen == [signal.SIGUSR1]
        assert signal.getsignal(signal.SIGUSR1) is theirs  # put back
    finally:
        signal.signal(signal.SIGUSR1, previous)


# -- loaders that restart where they stopped -------------------------------------------------


class Numbers(torch.utils.data.Dataset):
    """Item i is i plus a draw of the transform's seeded generator (the augmentation)."""

    class Transform:
        def set_seed(self, seed):
            self.rng = np.random.default_rng(seed)

    def __init__(self, n: int):
        self.n, self.transform = n, self.Transform()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"i": i, "aug": float(self.transform.rng.random())}


def _batches(loader, count):
    return [(b["i"].tolist(), b["aug"].tolist()) for b in (next(loader) for _ in range(count))]


def test_loader_restarts_at_its_position_and_ignores_the_worker_count():
    straight = _batches(train_loader(Numbers(5), 2, 0, seed=7), 8)
    passes = [i for ids, _ in straight for i in ids]
    assert sorted(passes[:5]) == [0, 1, 2, 3, 4] and sorted(passes[5:10]) == [0, 1, 2, 3, 4]
    assert straight[0][1][0] == np.random.default_rng(derive_seed(7, 1, 0)).random()

    first = train_loader(Numbers(5), 2, 0, seed=7)
    head = _batches(first, 3)
    resumed = train_loader(Numbers(5), 2, 2, seed=7)  # two worker processes this time
    resumed.load_state_dict(first.state_dict())
    assert head + _batches(resumed, 5) == straight
    assert resumed.epoch == 3  # 16 draws of a 5-image set


def test_loader_workers_outlive_the_signals_a_cluster_sends_to_every_process():
    """SLURM signals the whole job; a worker killed by it would make torch raise in the main
    process mid-step, before the trainer saves its checkpoint."""
    expected = _batches(train_loader(Numbers(6), 2, 0, seed=3), 6)
    loader = train_loader(Numbers(6), 2, 2, seed=3)
    got = _batches(loader, 2)
    pids = [str(w.pid) for w in loader._it._workers]
    for sig in ("-TERM", "-USR1", "-USR2"):  # sent by another process, as slurmstepd does
        subprocess.run(["kill", sig, *pids], check=True)
    time.sleep(0.3)
    got += _batches(loader, 4)
    assert got == expected
    assert all(w.is_alive() for w in loader._it._workers)


# -- whole runs: killed, resumed, compared with the uninterrupted run ------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> Path:
    """The uninterrupted run (in this process; the same code as the entry point)."""
    run_dir = tmp_path_factory.mktemp("reference")
    train_in_process(run_dir, data_dir)
    return run_dir


def assert_same_run(run_dir: Path, reference: Path) -> None:
    assert json.loads((run_dir / "results.json").read_text()) == json.loads(
        (reference / "results.json").read_text()
    )
    assert records(run_dir) == records(reference)
    final = load_checkpoint(run_dir / "model_final.pt")["model"]
    assert_same(final, load_checkpoint(reference / "model_final.pt")["model"], "model_final")
    name = f"checkpoints/iter_{MAX_ITERS}.pt"
    ours, theirs = load_checkpoint(run_dir / name), load_checkpoint(reference / name)
    for key in ("method", "loop", "data", "rng"):  # the teacher, optimizers, statistics too
        assert_same(ours[key], theirs[key], key)


def _wait(proc, log: Path, until, timeout: float = 120.0) -> None:
    start = time.monotonic()
    while not until():
        if proc.poll() is not None:
            pytest.fail(f"run ended early ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() - start > timeout:
            proc.kill()
            pytest.fail(f"timed out:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)


def test_sigkill_at_random_iterations_then_resume_ends_as_the_uninterrupted_run(
    tmp_path, data_dir, reference
):
    """Three SIGKILLs (no handler runs): each once a checkpoint at or after an iteration drawn
    at random exists, plus a random fraction of a step (mid-step, mid-evaluation or mid-write);
    each next leg resumes with `trainer.resume=auto` from the newest checkpoint the killed one
    completed. The last leg loads with two worker processes, which must not change a batch."""
    run_dir = tmp_path / "run"
    draw = random.Random(7)
    kills = sorted(draw.sample(range(2, MAX_ITERS - 1), 3))
    resumed_from = []

    def resumed(log: Path) -> list[int]:
        return [int(n) for n in re.findall(r"Resuming from \S+: iteration (\d+)", log.read_text())]

    for leg, at in enumerate(kills):
        log = tmp_path / f"leg{leg}.log"
        proc = start_train(run_dir, data_dir, log, "trainer.resume=auto")
        if leg:  # the killed leg's later metrics are cut back before this leg writes any
            _wait(proc, log, lambda: resumed(log))  # noqa: B023
            resumed_from += resumed(log)
        # a checkpoint of this leg's own, at or after the drawn iteration
        due = min(max([at, *(r + 1 for r in resumed_from)]), MAX_ITERS)
        _wait(proc, log, lambda: newest_checkpoint(run_dir) >= due)  # noqa: B023
        time.sleep(draw.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert "no checkpoint" in (tmp_path / "leg0.log").read_text()  # resume=auto, fresh dir
    log = tmp_path / "final.log"
    proc = start_train(run_dir, data_dir, log, "trainer.resume=auto", "trainer.num_workers=2")
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    resumed_from += resumed(log)
    assert len(resumed_from) == 3 and resumed_from == sorted(resumed_from)
    assert all(r >= at for r, at in zip(resumed_from, kills, strict=True))  # never from scratch
    assert_same_run(run_dir, reference)


def test_sigterm_writes_a_checkpoint_and_exits_cleanly(tmp_path, data_dir, reference):
    run_dir, log = tmp_path / "run", tmp_path / "leg.log"
    proc = start_train(run_dir, data_dir, log, "trainer.resume=auto")
    _wait(proc, log, lambda: newest_checkpoint(run_dir) >= 2)
    time.sleep(0.15)  # usually into iteration 3, mid-way through a log window
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 75, log.read_text()[-3000:]
    out = log.read_text()
    stopped = int(re.findall(r"stopped by SIGTERM after iteration (\d+)", out)[0])
    assert stopped >= 2 and "Traceback" not in out
    assert "trainer.resume=auto" in out  # the way to continue
    newest = list_checkpoints(run_dir / "checkpoints")[0]
    assert newest.name == f"iter_{stopped}.pt"  # written at the stop, not at the last interval
    assert load_checkpoint(newest, verify=True)["iteration"] == stopped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same settings: nothing to warn about
        train_in_process(run_dir, data_dir, "trainer.resume=auto")
    assert_same_run(run_dir, reference)


# -- a stage-2 ablation started from another run's stage 1 (the accuracy benchmark) ---------


@pytest.mark.parametrize("method", sorted(accuracy.SHARES_STAGE1))
def test_a_stage2_setting_resumed_from_anothers_stage1_ends_as_trained_from_scratch(
    tmp_path, data_dir, method
):
    """The premise of the benchmark's warm start (`SHARES_STAGE1`): the settings those
    ablations change act only in stage 2, so stage 2 started from the stage-1 checkpoint of the
    run they share stage 1 with ends bit for bit as the ablation trained from scratch."""
    ours = accuracy.ABLATIONS[method][1]
    theirs = (accuracy.METHODS | accuracy.ABLATIONS)[accuracy.SHARES_STAGE1[method]][1]
    assert ours != theirs  # they differ (in stage 2), or there is nothing to check
    shared = tmp_path / "shared"
    train_in_process(shared, data_dir, *theirs)
    scratch = tmp_path / "scratch"
    train_in_process(scratch, data_dir, *ours)
    warm = tmp_path / "warm"
    warm.mkdir()
    (warm / "metrics.jsonl").write_text((shared / "metrics.jsonl").read_text())  # as the bench
    stage1 = shared / "checkpoints" / f"iter_{PRE_ITERS}.pt"
    with pytest.warns(UserWarning, match="other settings|differ"):
        train_in_process(warm, data_dir, *ours, f"trainer.resume={stage1}")
    assert_same_run(warm, scratch)
