"""The notebooks run top to bottom on run directories and render tables that match the runs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
from omegaconf import OmegaConf
from PIL import Image
from tiny_runs import multirun
from tiny_student import reference_logits, save_tiny_run

from duda.data.classes import CLASS_NAMES

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PNG = b"\x89PNG\r\n\x1a\n"


def execute(name: str, tmp_path: Path, **parameters) -> Path:
    """Run a notebook with papermill in a scratch folder; its outputs go to tmp_path/out."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out"
    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(tmp_path / name),
        parameters={**parameters, "out_dir": str(out)},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    return out


def test_notebooks_are_stored_without_outputs_and_with_a_parameters_cell():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path.name
        assert "parameters" in code[0].metadata.get("tags", []), path.name


# --------------------------------------------------------------------------- compare_runs


def fabricate_sweep(names_differ: bool) -> tuple[list[dict], dict[str, list[dict]]]:
    """Three seeds of `uda.name=a`, two of `b`, one of `c`, with random per-class IoU. Per run,
    keys that do not define the experiment differ too (threads, data root), and one run has
    a key the others lack (a schema change between runs). Returns (runs, {label: runs})."""
    rng = np.random.default_rng(0)
    runs, expected = [], {}
    for method, seeds in (("a", (0, 1, 2)), ("b", (0, 1)), ("c", (5,))):
        label = f"synth_day_{method}" if names_differ else f"synth_day_x (uda.name={method})"
        for seed in seeds:
            job = len(runs)
            iou = {c: float(rng.uniform(0, 100)) for c in CLASS_NAMES}
            iou["train"] = None  # a class absent from the val split: null in results.json
            config = {
                "seed": seed,
                "run_name": "${dataset.name}_" + (method if names_differ else "x") + "_s${seed}",
                "dataset": {"name": "synth_day", "target": {"root": f"/data/{job}"}},
                "uda": {"name": method, "ema_alpha": 0.999},
                "trainer": {"threads": 1 + job % 2, "max_iters": 20},
            }
            if job == 0:
                config["uda"]["added_later"] = True
            miou = float(np.mean([v for v in iou.values() if v is not None]))
            curve = [(10, float(rng.uniform(0, 50))), (20, miou)]
            runs.append({"name": f"{job}_{method}_s{seed}", "config": config, "iou": iou,
                         "mIoU": miou, "curve": curve})  # fmt: skip
            expected.setdefault(label, []).append(runs[-1])
    return runs, expected


def write_run_dirs(root: Path, runs: list[dict]) -> None:
    """Run directories as `duda.train` leaves them (the parts the notebook reads)."""
    for run in runs:
        run_dir = root / run["name"]
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(run["config"]))
        results = {"mIoU": run["mIoU"], "aAcc": 50.0, "iou": run["iou"], "iteration": 20}
        (run_dir / "results.json").write_text(json.dumps(results))
        records = [{"iteration": 10, "split": "train", "loss": 1.0}]
        records += [{"iteration": i, "split": "val", "mIoU": m, "iou": {}} for i, m in run["curve"]]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "bench").mkdir()
    (root / "bench" / "results.json").write_text("{}")  # no .hydra: not a run, left out


STUB = """
import json
from pathlib import Path


class Run:
    def __init__(self, name, state, config, summary, history):
        self.name, self.state, self.config, self.summary = name, state, config, summary
        self._history = history

    def history(self, keys, pandas=True):
        assert pandas is False
        return [{k: row[k] for k in ("_step", *keys) if k in row} for row in self._history]


class Api:
    def __init__(self, timeout=None):
        pass

    def runs(self, path, filters=None):
        data = json.loads((Path(__file__).parent / "runs.json").read_text())
        return [Run(**r) for r in data[path] if all(r["config"].get(k) == v
                                                    for k, v in (filters or {}).items())]
"""


def write_wandb_stub(folder: Path, runs: list[dict]) -> None:
    """A `wandb` package whose Api serves `runs` as W&B's public API does: the resolved config
    (with W&B's own `_wandb` key and the machine's `environment`), final figures in the summary
    (`iou/<class>`, absent classes left out), `val/mIoU` history. One run is still running."""
    served = []
    for i, run in enumerate(runs):
        config = OmegaConf.to_container(OmegaConf.create(run["config"]), resolve=True)
        config |= {"_wandb": {"t": i}, "environment": {"host": f"node{i}"}}
        summary = {"mIoU": run["mIoU"], "val/mIoU": run["mIoU"], "_step": 20}
        summary |= {f"iou/{c}": v for c, v in run["iou"].items() if v is not None}
        history = [{"_step": it, "val/mIoU": m} for it, m in run["curve"]]
        history.insert(1, {"_step": 15, "train/loss": 1.0})
        served.append(dict(name=run["name"], state="finished", config=config, summary=summary,
                           history=history))  # fmt: skip
    served.append({**served[0], "name": "crashed", "state": "crashed"})
    (folder / "wandb").mkdir(parents=True)
    (folder / "wandb" / "__init__.py").write_text(STUB)
    (folder / "wandb" / "runs.json").write_text(json.dumps({"team/duda": served}))


def check_compare_outputs(out: Path, expected: dict[str, list[dict]]) -> None:
    summary = pd.read_csv(out / "summary.csv", index_col="group")
    assert list(summary.index) == list(expected)
    for label, runs in expected.items():
        values = [r["mIoU"] for r in runs]
        assert summary.loc[label, "runs"] == len(runs)
        assert summary.loc[label, "mean"] == pytest.approx(np.mean(values))
        if len(runs) > 1:
            assert summary.loc[label, "std"] == pytest.approx(np.std(values, ddof=1))
        else:
            assert np.isnan(summary.loc[label, "std"])
    assert list(summary["uda.name"]) == ["a", "b", "c"]  # the one key that varies

    per_class = pd.read_csv(out / "per_class_mean.csv", index_col=0)
    assert list(per_class.index) == list(CLASS_NAMES)
    for label, runs in expected.items():
        for c in ("road", "bicycle"):
            assert per_class.loc[c, label] == pytest.approx(np.mean([r["iou"][c] for r in runs]))
        assert np.isnan(per_class.loc["train", label])
    assert len(pd.read_csv(out / "runs.csv")) == 6
    for figure in ("miou.png", "per_class.png", "curves.png"):
        assert (out / figure).read_bytes()[:8] == PNG


@pytest.mark.parametrize("names_differ", [True, False], ids=["by-run-name", "by-varying-key"])
def test_compare_runs_tables_match_the_run_directories(tmp_path, names_differ):
    runs, expected = fabricate_sweep(names_differ)
    write_run_dirs(tmp_path / "sweep", runs)
    out = execute("compare_runs.ipynb", tmp_path, runs_dir=str(tmp_path / "sweep"))
    check_compare_outputs(out, expected)


def test_compare_runs_tables_match_the_wandb_runs(tmp_path, monkeypatch):
    runs, expected = fabricate_sweep(names_differ=True)
    write_wandb_stub(tmp_path / "stub", runs)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stub"))  # the kernel's `import wandb`
    out = execute("compare_runs.ipynb", tmp_path, source="wandb", wandb_path="team/duda")
    check_compare_outputs(out, expected)


def test_compare_runs_names_the_folder_without_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(papermill.PapermillExecutionError, match="no finished run"):
        execute("compare_runs.ipynb", tmp_path, runs_dir=str(tmp_path / "empty"))


# --------------------------------------------------------------------------- predictions


@pytest.fixture
def tiny_run(tiny_layouts) -> Path:
    """A tiny student whose run evaluated the Cityscapes layout of `tiny_layouts` (2 val images
    with label bands road / car / ignore / bicycle)."""
    return save_tiny_run(tiny_layouts / "run" / "model_final.pt", tiny_layouts / "cityscapes")


@pytest.mark.slow  # 22-28 s on the loaded 2-core machine, mostly the kernel importing torch/timm
def test_predictions_notebook_scores_what_the_network_predicts(tiny_run, tiny_layouts, tmp_path):
    out = execute("predictions.ipynb", tmp_path, checkpoint=str(tiny_run), num_images=2)
    table = pd.read_csv(out / "per_image.csv", index_col="image")
    val = sorted((tiny_layouts / "cityscapes/leftImg8bit/val").rglob("*.png"))
    assert sorted(table.index) == [p.name for p in val]
    band_ids = np.repeat(np.array([0, 13, 255, 18]), 16)  # train IDs of the 4 label bands
    for path in val:
        image = np.asarray(Image.open(path).convert("RGB"))
        pred = reference_logits(tiny_run, image[None])[0].argmax(0)
        label = np.broadcast_to(band_ids, pred.shape)
        accuracy = 100 * (pred == label)[label != 255].mean()
        assert table.loc[path.name, "pixel accuracy"] == pytest.approx(accuracy, abs=0.5)
        assert (table.loc[path.name, "height"], table.loc[path.name, "width"]) == (48, 64)
    assert (out / "predictions.png").read_bytes()[:8] == PNG


@pytest.mark.slow
def test_predictions_notebook_on_a_folder_of_images(tiny_run, tiny_layouts, tmp_path):
    folder = tiny_layouts / "gta" / "images"  # 3 images, no labels needed
    out = execute("predictions.ipynb", tmp_path, checkpoint=str(tiny_run), images_dir=str(folder))
    table = pd.read_csv(out / "per_image.csv", index_col="image")
    assert list(table.index) == ["00001.png", "00002.png", "00003.png"]
    assert "pixel accuracy" not in table.columns


# --------------------------------------------------------------------------- on real runs


@pytest.mark.slow
def test_notebooks_on_a_tiny_sweep_of_the_real_entry_point(tmp_path):
    """Two learning rates x two seeds of `duda.train` on the embedded benchmark, then both
    notebooks on what the sweep wrote."""
    proc = multirun(
        tmp_path, "+experiment=synth_source_only", "seed=0,1", "optimizer.lr=0.001,0.002",
        "model.head.embed_dim=32", wandb_mode="disabled",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/results.json"))
    assert len(runs) == 4
    out = execute("compare_runs.ipynb", tmp_path / "compare", runs_dir=str(tmp_path / "sweep"))
    summary = pd.read_csv(out / "summary.csv", index_col="group")
    by_lr: dict[float, list[float]] = {}
    for run in runs:
        lr = OmegaConf.load(run / ".hydra/config.yaml").optimizer.lr
        by_lr.setdefault(lr, []).append(json.loads((run / "results.json").read_text())["mIoU"])
    assert len(summary) == 2 and set(summary["runs"]) == {2}
    for lr, values in by_lr.items():
        row = summary[summary["optimizer.lr"].astype(float) == lr].iloc[0]
        assert row["mean"] == pytest.approx(np.mean(values))
    checkpoint = str(runs[0] / "model_final.pt")
    out = execute("predictions.ipynb", tmp_path / "pred", checkpoint=checkpoint)
    assert len(pd.read_csv(out / "per_image.csv")) == 2  # the tiny sweep's val split
