"""The real entry point, in a subprocess, on a tiny generated benchmark."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

TINY = [
    "dataset.synth.source_count=6",
    "dataset.synth.target_count=6",
    "dataset.synth.val_count=3",
    "dataset.synth.size=[128,64]",
    "dataset.source.crop_hw=[64,64]",
    "dataset.target.crop_hw=[64,64]",
    "trainer.max_iters=4",
    "trainer.batch_size=2",
    "trainer.num_workers=0",
    "trainer.log_interval=1",
    "trainer.eval_interval=2",
    "trainer.checkpoint_interval=4",
    "trainer.eval_batch_size=1",
    "trainer.progress=false",
]


def _train(
    tmp_path: Path, *overrides: str, experiment: str = "synth_source_only"
) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_API_KEY": "", "HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "duda.train", f"+experiment={experiment}", *overrides]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_source_only_run_writes_results_metrics_checkpoint_and_wandb(tmp_path):
    run_dir = tmp_path / "run"
    proc = _train(
        tmp_path, f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={run_dir}", *TINY
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the synthetic benchmark was generated on first use, in the real layouts
    assert (tmp_path / "data/synth_day/gta/images/00001.png").exists()
    assert list((tmp_path / "data/synth_day/cityscapes/leftImg8bit/val").glob("*/*.png"))

    results = json.loads((run_dir / "results.json").read_text())
    assert results["iteration"] == 4 and results["model"] == "mit_b0+segformer"
    assert len(results["iou"]) == 19 and 0 <= results["mIoU"] <= 100
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["iteration"] for r in records if r["split"] == "val"] == [2, 4]
    assert [r["iteration"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]
    assert all("loss/source" in r for r in records if r["split"] == "train")
    assert "mIoU" in proc.stdout and "bicycle" in proc.stdout  # the per-class table

    final = torch.load(run_dir / "model_final.pt", weights_only=True)
    assert final["iteration"] == 4 and "head.classifier.weight" in str(final["model"].keys())
    assert (run_dir / "checkpoints/iter_4.pt").exists()
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1, "W&B must log offline without an API key"
    assert "no API key" in proc.stdout


def test_missing_dataset_fails_fast_with_layout(tmp_path):
    proc = _train(tmp_path, "dataset=gta_cs", f"paths.data_dir={tmp_path}", "logger=none")
    assert proc.returncode == 2
    assert "GTA5 not found" in proc.stderr and "images/00001.png" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_key_fails_before_work(tmp_path):
    proc = _train(tmp_path, "trainer.max_iter=3")
    assert proc.returncode != 0
    assert "max_iter" in proc.stderr


@pytest.mark.parametrize(
    ("experiment", "extra", "terms"),
    [
        ("synth_daformer_mit_b0", ["uda=dacs"], {"loss/source", "loss/mix"}),
        ("synth_daformer_mit_b0", ["uda.fd.enabled=true"], {"loss/source", "loss/mix", "loss/fd"}),
        ("synth_mic_mit_b0", ["uda.fd.enabled=true"], {"loss/fd", "loss/mic", "loss/mix"}),
    ],
)
def test_self_training_runs_log_terms_and_pseudo_label_quality(tmp_path, experiment, extra, terms):
    run_dir = tmp_path / "run"
    proc = _train(
        tmp_path,
        f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={run_dir}",
        "logger=none",
        *TINY,
        *extra,
        experiment=experiment,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert len(train) == 4 and terms <= set(train[-1])
    # the synthetic target has labels: pseudo-label quality is measured against them
    assert 0 <= train[-1]["pl_teacher/acc"] <= 100 and "pl_teacher/iou/road" in train[-1]
    assert 0 <= train[-1]["pl/teacher_confident"] <= 1


def test_duda_runs_both_stages_through_the_entry_point(tmp_path):
    run_dir = tmp_path / "run"
    small_large = [  # a B0-sized "large" pair keeps the test fast
        "model.large.backbone.name=mit_b0",
        "distill.pre_iters=2",
        "loss.kd=1.0",  # synth_duda leaves the soft KD term out; every loss term runs here
    ]
    proc = _train(
        tmp_path,
        f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={run_dir}",
        "logger=none",
        *TINY,
        *small_large,
        experiment="synth_duda",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    stage1, stage2 = train[1], train[3]  # iterations 2 (t = 1) and 4 (t = 3)
    assert {"loss/large_source", "loss/large_mix", "loss/student_pl", "loss/student_kd"} <= set(
        stage1
    )
    assert "loss/large_source" not in stage2 and "loss/student_inconsistency" in stage2
    assert "inconsistency/w/road" in stage2 and "pl_fused/acc" in stage2
    assert "student/acc" in stage2 and 0 <= stage2["distill/agreement"] <= 1
    final = torch.load(run_dir / "model_final.pt", weights_only=True)
    assert final["config"]["model"]["backbone"]["name"] == "mit_b0"


def test_missing_weights_fail_with_the_path_and_the_way_out(tmp_path):
    proc = _train(
        tmp_path,
        f"paths.data_dir={tmp_path / 'data'}",
        f"model.backbone.pretrained={tmp_path / 'mit_b0.pth'}",
        "logger=none",
        *TINY,
    )
    assert proc.returncode == 2
    assert "mit_b0.pth not found" in proc.stderr and "pretrained=null" in proc.stderr
    assert "Traceback" not in proc.stderr
