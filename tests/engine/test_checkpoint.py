"""Atomic checkpoint writes and code-free loading."""

import pickle

import pytest
import torch

from duda.engine.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    state = {"iteration": 3, "model": {"w": torch.arange(4.0)}}
    path = save_checkpoint(state, tmp_path / "c" / "x.pt")
    loaded = load_checkpoint(path)
    assert loaded["iteration"] == 3 and torch.equal(loaded["model"]["w"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["x.pt"]  # no temporary file left


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    path = save_checkpoint({"v": 1}, tmp_path / "x.pt")

    class Unpicklable:
        def __reduce__(self):
            raise pickle.PicklingError("cannot")

    with pytest.raises(pickle.PicklingError):
        save_checkpoint({"v": Unpicklable()}, path)
    assert load_checkpoint(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_untrusted_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
