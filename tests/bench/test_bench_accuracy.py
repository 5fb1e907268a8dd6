"""The accuracy benchmark's planning and reports, from fake results.json files: no training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from duda.bench import accuracy
from duda.bench.accuracy import (
    AccuracySettings,
    collect,
    pending,
    plan,
    planned_config,
    run_accuracy,
)
from duda.bench.chart import _pil_chart
from duda.bench.configs import compose
from duda.engine import device

FAKE = {  # per-seed target mIoU of each method
    "source_only_small": [20.0, 22.0, 24.0],
    "uda_small": [50.0, 52.0, 54.0],
    "uda_large": [60.0, 60.0, 60.0],
    "duda_small": [55.0, 56.0, 57.0],
    "oracle_small": [70.0, 72.0, 74.0],
}
CLASSES = ["road", "sidewalk", "car"]


def _settings(tmp_path: Path, **kw) -> AccuracySettings:
    return AccuracySettings(out=tmp_path / "report", work_dir=tmp_path / "work", **kw)


def _write_fake_results(runs, skip=()):
    for run in runs:
        if (run.method, run.seed) in skip:
            continue
        miou = FAKE.get(run.method, FAKE["duda_small"])[run.seed]
        iou = {c: miou + i for i, c in enumerate(CLASSES)}
        iou["car"] = float("nan") if run.seed == 0 else iou["car"]
        run.run_dir.mkdir(parents=True)
        results = {"mIoU": miou, "iou": iou, "model": f"net_{run.method}", "iteration": 1}
        (run.run_dir / "results.json").write_text(json.dumps(results))


def test_plan_covers_every_method_and_seed_and_resumes(tmp_path):
    s = _settings(tmp_path)
    runs = plan(s)
    assert [(r.method, r.seed) for r in runs] == [(m, k) for m in FAKE for k in (0, 1, 2)]
    assert len({r.run_dir for r in runs}) == len(runs)
    _write_fake_results(runs, skip={("uda_large", 1)})
    assert [(r.method, r.seed) for r in pending(runs)] == [("uda_large", 1)]


def test_longest_runs_start_first(tmp_path):
    order = [r.method for r in pending(plan(_settings(tmp_path, seeds=[0])))]
    assert order[:2] == ["duda_small", "uda_large"]
    assert order.index("uda_small") < order.index("source_only_small")


def _store_config(run, overrides):
    """What Hydra writes into a run folder: the composed config, unresolved."""
    from omegaconf import OmegaConf

    (run.run_dir / ".hydra").mkdir(exist_ok=True)
    config = compose([o for o in overrides if not o.startswith("hydra.")])
    OmegaConf.save(config, run.run_dir / ".hydra" / "config.yaml")


def test_a_finished_run_with_other_settings_stops_the_benchmark(tmp_path):
    s = _settings(tmp_path, seeds=[0], precision="fp32")
    runs = plan(s)
    _write_fake_results(runs)
    run = next(r for r in runs if r.method == "duda_small")
    _store_config(run, run.overrides + ["trainer.threads=7", "paths.data_dir=/elsewhere"])
    assert accuracy.stale(run) == []  # threads and data location do not change the result
    # Another precision, or an experiment file whose defaults changed since the run trained
    # (the same override list then composes another config), makes the run stale.
    _store_config(run, [o.replace("precision=fp32", "precision=bf16") for o in run.overrides])
    assert accuracy.stale(run) == ["trainer.precision: bf16 -> fp32"]
    _store_config(run, run.overrides + ["loss.kd=0.5"])
    assert accuracy.stale(run) == ["loss.kd: 0.5 -> 0.0"]
    lines = []
    assert run_accuracy(s, log=lines.append) == 2
    assert str(run.run_dir) in lines[0] and "nothing was deleted" in lines[-1]
    assert run.results_path.is_file()


def test_keys_added_after_a_run_trained_match_only_their_old_behaviour(tmp_path):
    from omegaconf import OmegaConf

    run = next(r for r in plan(_settings(tmp_path, seeds=[0])) if r.method == "duda_small")
    _write_fake_results([run])
    _store_config(run, run.overrides)
    record = run.run_dir / ".hydra" / "config.yaml"
    older = OmegaConf.load(record)
    del older.distill.inconsistency["normalize"]  # a knob that did not exist yet ...
    older.distill["retired_knob"] = 1  # ... and one that no longer exists
    del older.trainer["max_iters"]  # a key that is not known to be a later addition
    OmegaConf.save(older, record)
    assert accuracy.stale(run) == [
        "distill.retired_knob: 1 -> (removed)",
        "trainer.max_iters: (absent) -> 1000",
    ]
    # synth_duda fine-tunes on the mixed view; a run stored before the knob existed did not.
    del older.distill.finetune["mix"]
    OmegaConf.save(older, record)
    assert "distill.finetune.mix: False -> True" in accuracy.stale(run)


def test_precision_auto_follows_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    assert _settings(tmp_path).run_precision == "bf16"
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    s = _settings(tmp_path, seeds=[0])
    assert s.run_precision == "fp32"
    assert all("trainer.precision=fp32" in r.overrides for r in plan(s))
    assert _settings(tmp_path, precision="bf16").run_precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        _settings(tmp_path, precision="fp16").check()


def test_ablations_are_added_on_request(tmp_path):
    methods = {r.method for r in plan(_settings(tmp_path, seeds=[0], ablations=True))}
    assert set(accuracy.ABLATIONS) <= methods and set(FAKE) <= methods


def test_only_selects_methods_in_table_order(tmp_path):
    s = _settings(tmp_path, seeds=[0], only=["duda_clean_finetune", "uda_small"])
    assert [r.method for r in plan(s)] == ["uda_small", "duda_clean_finetune"]
    with pytest.raises(ValueError, match="--only duda_big: expected some of"):
        _settings(tmp_path, only=["duda_big"]).check()


def test_reports_from_fake_results(tmp_path):
    s = _settings(tmp_path, command="python -m duda.bench accuracy --out report")
    runs = plan(s)
    _write_fake_results(runs)
    large = next(r for r in runs if r.method == "uda_large")
    _store_config(large, large.overrides)  # the report names the decoder width it stores
    assert run_accuracy(s, log=lambda *_: None) == 0  # nothing to train: all results exist
    assert json.loads((s.out / "accuracy.json").read_text()) == FAKE

    md = (s.out / "accuracy.md").read_text()
    # means 22 / 52 / 60 / 56 / 72; gap closed (x - 22) / (72 - 22)
    assert "| 22.0 ± 2.0 |" in md and "| 60.0 ± 0.0 |" in md
    assert "| 60 % |" in md  # uda_small: 30 / 50
    assert "| 76 % |" in md  # uda_large: 38 / 50
    assert "| 68 % |" in md  # duda_small: 34 / 50
    assert "| 100 % |" in md and "| 0 % |" in md
    assert "| `uda_large` | net_uda_large-768 |" in md and "| net_uda_small |" in md
    assert "+8.00 mIoU (enough" in md  # large - small
    assert "DUDA beats base UDA with the same small network: +4.0 mIoU" in md
    # per-class means; "car" is NaN for seed 0, so its mean is over seeds 1 and 2 only
    assert "| road | 22.0 | 52.0 | 60.0 | 56.0 | 72.0 |" in md
    assert "| car | 25.0 | 55.0 | 62.0 | 58.5 | 75.0 |" in md

    png = (s.out / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((s.out / "accuracy_meta.json").read_text())
    assert meta["summary"][0]["method"] == "source_only_small"


def test_a_margin_just_under_three_is_not_enough_and_does_not_read_as_three():
    rows = [
        {"method": "uda_small", "mean": 24.24, "pl_miou": float("nan")},
        {"method": "uda_large", "mean": 27.22, "pl_miou": float("nan")},
    ]
    (line,) = accuracy.findings(rows)
    assert "+2.98 mIoU (**not enough**" in line
    rows[1]["mean"] = 27.5
    assert "+3.26 mIoU (enough" in accuracy.findings(rows)[0]


def test_missing_runs_are_null_in_accuracy_json(tmp_path):
    s = _settings(tmp_path)
    runs = plan(s)
    _write_fake_results(runs, skip={("duda_small", 2)})
    accuracy.write_reports(s, collect(runs))
    data = json.loads((s.out / "accuracy.json").read_text())
    assert data["duda_small"] == [55.0, 56.0, None]
    assert "| 55.5 ± 0.7 |" in (s.out / "accuracy.md").read_text()


def test_run_command_passes_overrides_and_limits_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy, "usable_cores", lambda: 8)
    s = _settings(
        tmp_path,
        style="night",
        data_seed=3,
        seeds=[1],
        jobs=2,
        overrides=["trainer.max_iters=200", "distill.tau=2.0", "model.large.head.embed_dim=512"],
    )
    runs = {r.method: r for r in plan(s)}
    src = runs["source_only_small"].overrides
    assert src[0] == "+experiment=synth_source_only"
    for expected in (
        "dataset=synth_night",
        "dataset.synth.seed=3",
        f"paths.data_dir={tmp_path / 'work' / 'data' / 'data_seed3'}",
        "seed=1",
        f"hydra.run.dir={runs['source_only_small'].run_dir}",
        "logger=none",
        "trainer.progress=false",
        "trainer.threads=4",  # 2 jobs x 4 threads = 8 cores
    ):
        assert expected in src
    assert src[-1] == "trainer.max_iters=200"  # the user's override comes last and wins
    # DUDA-only keys stay out: the single-network configs have no such keys
    assert not any(o.startswith(("distill.", "model.large.")) for o in src)
    assert planned_config(runs["uda_large"])["trainer.max_iters"] == 200

    duda = runs["duda_small"].overrides
    assert duda[0] == "+experiment=synth_duda" and "distill.tau=2.0" in duda
    assert planned_config(runs["duda_small"])["model.large.head.embed_dim"] == 512
    default = compose(["+experiment=synth_duda"])
    share = default.distill.pre_iters / default.trainer.max_iters
    assert f"distill.pre_iters={round(share * 200)}" in duda  # stage 1 keeps its share


def test_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="style"):
        _settings(tmp_path, style="rain").check()
    with pytest.raises(ValueError, match="repeated"):
        _settings(tmp_path, seeds=[0, 0]).check()


def test_pil_fallback_chart_writes_a_png(tmp_path):
    path = tmp_path / "chart.png"
    _pil_chart(
        {"a": {"road": 50.0, "car": float("nan")}, "b": {"road": 90.0, "car": 10.0}},
        ["road", "car"],
        path,
        "title",
    )
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_cli_dry_run_trains_nothing(tmp_path, capsys):
    from duda.bench.__main__ import main

    code = main(
        [
            "accuracy",
            "--out",
            str(tmp_path / "r"),
            "--work-dir",
            str(tmp_path / "w"),
            "--seeds",
            "0",
            "--dry-run",
        ]
    )
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "duda.train" in line]
    assert len(lines) == len(FAKE)
    assert not (tmp_path / "w").exists() and not (tmp_path / "r").exists()


def test_run_minutes_and_pseudo_label_quality_from_run_files(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("{}")
    (run_dir / "results.json").write_text("{}")
    os.utime(run_dir / ".hydra" / "config.yaml", (1000.0, 1000.0))
    os.utime(run_dir / "results.json", (1000.0 + 90 * 60, 1000.0 + 90 * 60))
    assert accuracy.run_minutes(run_dir) == pytest.approx(90.0)
    assert accuracy.run_minutes(tmp_path / "unfinished") is None

    lines = [
        {"iteration": it, "split": "train", "pl_teacher/acc": it / 10, "pl_teacher/mIoU": it / 100}
        for it in range(20, 201, 20)
    ]  # 10 windows; the last 20 % are iterations 180, 200
    lines.insert(3, {"iteration": 60, "split": "val", "mIoU": 99.0})
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    quality = accuracy.pseudo_label_quality(run_dir / "metrics.jsonl")
    assert quality == pytest.approx({"acc": 19.0, "mIoU": 1.9})
    source_only = tmp_path / "so.jsonl"
    source_only.write_text(json.dumps({"iteration": 20, "split": "train", "loss/source": 1}))
    assert accuracy.pseudo_label_quality(source_only) is None


def _finish_with_stage1_checkpoint(run) -> Path:
    """A finished run as the bench leaves it: results, stored config, stage-1 checkpoint."""
    _write_fake_results([run])
    _store_config(run, run.overrides)
    pre_iters = compose(["+experiment=synth_duda"]).distill.pre_iters
    checkpoint = run.run_dir / "checkpoints" / f"iter_{pre_iters}.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    (run.run_dir / "metrics.jsonl").write_text('{"iteration": 1}\n')
    return checkpoint


def test_stage2_ablations_start_from_the_stage1_checkpoint_they_share(tmp_path):
    s = _settings(tmp_path, seeds=[0, 1], ablations=True)
    runs = {(r.method, r.seed): r for r in plan(s)}
    checkpoint = _finish_with_stage1_checkpoint(runs["duda_small", 0])
    ablation = runs["duda_no_inconsistency", 0]
    assert accuracy.stage1_checkpoint(ablation) == checkpoint
    assert accuracy.stage1_checkpoint(runs["duda_clean_finetune", 0]) == checkpoint
    assert accuracy.stage1_checkpoint(runs["duda_no_inconsistency", 1]) is None  # not trained
    assert accuracy.stage1_checkpoint(runs["duda_stage1_only", 0]) is None  # stage 1 differs
    assert accuracy.stage1_checkpoint(runs["duda_soft_kd", 0]) is None  # its partner is absent
    ablation.stage1_from = checkpoint
    assert ablation.command()[-1] == f"trainer.resume={checkpoint}"

    # A partner whose stage 1 trained with other settings is no partner.
    _store_config(runs["duda_small", 0], runs["duda_small", 0].overrides + ["uda.ema_alpha=0.9"])
    assert accuracy.stage1_checkpoint(ablation) is None
    # Its stored trainer.resume does not make the finished ablation stale.
    _write_fake_results([ablation])
    _store_config(ablation, ablation.overrides + [f"trainer.resume={checkpoint}"])
    assert accuracy.stale(ablation) == []
    stored = accuracy.stored_config
    assert accuracy.resumed(stored(ablation.run_dir))
    assert not accuracy.resumed(stored(runs["uda_small", 0].run_dir))
    accuracy.write_reports(s, collect(list(runs.values())))
    report = (s.out / "accuracy.md").read_text()
    assert report.count(" † |") == 1 and "time covers that last launch only" in report


def test_runs_waiting_for_a_stage1_checkpoint_train_in_the_second_wave(tmp_path):
    s = _settings(tmp_path, seeds=[0, 1], only=["duda_small", "duda_no_inconsistency"])
    runs = {(r.method, r.seed): r for r in plan(s)}
    _write_fake_results([runs["duda_small", 1]])
    first, second = accuracy.waves(pending(list(runs.values())))
    assert {(r.method, r.seed) for r in first} == {
        ("duda_small", 0),
        ("duda_no_inconsistency", 1),  # its partner is done: no reason to wait
    }
    assert [(r.method, r.seed) for r in second] == [("duda_no_inconsistency", 0)]
    assert accuracy.waves([runs["duda_small", 0]]) == [[runs["duda_small", 0]]]


def test_dry_run_shows_the_warm_start(tmp_path):
    s = _settings(tmp_path, seeds=[0], only=["duda_small", "duda_no_inconsistency"], dry_run=True)
    runs = {r.method: r for r in plan(s)}
    checkpoint = _finish_with_stage1_checkpoint(runs["duda_small"])
    lines = []
    assert run_accuracy(s, log=lines.append) == 0
    assert lines[-1].endswith(f"trainer.resume={checkpoint}")
