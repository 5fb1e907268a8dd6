"""`python -m duda.bench {accuracy,speed} ...`: the two benchmarks of the README.

python -m duda.bench speed --out bench                      # CPU preset, a few minutes
python -m duda.bench speed --out bench --preset paper       # MiT-B5/B0 at 512 crops (GPU)
python -m duda.bench accuracy --style day --data-seed 0 --seeds 0,1,2 --out bench
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations phones home at import


def _hw(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AxB like 512x1024, got {text!r}") from None
    return a, b


def _seeds(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2, got {text!r}") from None


def _speed_parser(sub: argparse._SubParsersAction) -> None:
    from duda.bench.speed import PRESETS, SECTIONS

    p = sub.add_parser(
        "speed",
        help="step time / memory ratios, EMA, data pipeline and inference in one process",
        description="Unset options take the preset's value (see duda/bench/speed.py PRESETS).",
    )
    p.add_argument("--out", type=Path, required=True, help="writes OUT/speed.json and speed.md")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--large", default=None, help="large backbone (preset cpu: mit_b2)")
    p.add_argument("--large-head", default=None)
    p.add_argument("--small", default=None, help="small backbone (mit_b0)")
    p.add_argument("--small-head", default=None)
    p.add_argument("--crop", type=int, default=None, help="training crop side in pixels")
    p.add_argument("--batch", type=int, default=None, help="crops per domain and step (2)")
    p.add_argument("--iters", type=int, default=None, help=">= 20 unless --quick")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--ema-backbone", default=None, help="EMA parameter list (mit_b5)")
    p.add_argument("--ema-head", default=None)
    p.add_argument("--ema-iters", type=int, default=None)
    p.add_argument("--data-crop", type=int, default=None)
    p.add_argument("--data-images", type=int, default=None, help="PNGs generated per domain")
    p.add_argument("--data-iters", type=int, default=None)
    p.add_argument("--data-source-size", type=_hw, default=None, help="WxH (1914x1052)")
    p.add_argument("--data-target-size", type=_hw, default=None, help="WxH (2048x1024)")
    p.add_argument("--infer-hw", type=_hw, default=None, help="HxW (512x1024)")
    p.add_argument("--infer-iters", type=int, default=None)
    p.add_argument("--fd", action="store_true", default=None, help="feature distance on")
    p.add_argument("--no-flops", dest="flops", action="store_false", default=None)
    p.add_argument("--quick", action="store_true", default=None, help="allow < 20 iterations")
    p.add_argument(
        "--skip", default="", help=f"comma-separated sections to leave out: {','.join(SECTIONS)}"
    )


def _accuracy_parser(sub: argparse._SubParsersAction) -> None:
    from duda.bench.accuracy import ABLATIONS, STYLES

    p = sub.add_parser(
        "accuracy",
        help="train every method on the embedded benchmark for each seed; table + chart",
    )
    p.add_argument("--out", type=Path, required=True, help="writes OUT/accuracy.json, .md, .png")
    p.add_argument("--style", choices=STYLES, default="day")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2])
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path("outputs/bench"),
        help="where the runs (runs/) and the generated data (data/) go",
    )
    p.add_argument(
        "--data-dir", type=Path, default=None, help="benchmark data root (default WORK_DIR/data)"
    )
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Hydra override for every run (repeatable), e.g. trainer.max_iters=200; "
        "distill.* and model.large.* overrides reach the DUDA runs only",
    )
    p.add_argument(
        "--ablations",
        action="store_true",
        help=f"also train the DUDA ablations ({', '.join(ABLATIONS)})",
    )
    p.add_argument(
        "--only",
        type=lambda v: [m.strip() for m in v.split(",") if m.strip()],
        default=[],
        metavar="METHOD,...",
        help="train and report only these methods or ablations, e.g. uda_small,duda_small",
    )
    p.add_argument("--jobs", type=int, default=1, help="trainings in parallel")
    p.add_argument("--threads", type=int, default=None, help="per run (default cores / jobs)")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="trainer.precision of every run; auto: bf16 where the CPU has native bf16",
    )
    p.add_argument("--dry-run", action="store_true", help="print the commands, train nothing")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m duda.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _speed_parser(sub)
    _accuracy_parser(sub)
    args = parser.parse_args(argv)
    command = "python -m duda.bench " + shlex.join(argv)
    if args.command == "speed":
        return _speed(args, command)
    return _accuracy(args, command)


def _speed(args: argparse.Namespace, command: str) -> int:
    from duda.bench.speed import run_speed, settings_from

    given = {k: v for k, v in vars(args).items() if k not in ("command", "out", "preset", "skip")}
    skip = tuple(x.strip() for x in args.skip.split(",") if x.strip())
    try:
        settings = settings_from(args.preset, skip=skip, **given)
        settings.check()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_speed(settings, args.out, command=command)
    return 0


def _accuracy(args: argparse.Namespace, command: str) -> int:
    from duda.bench.accuracy import AccuracySettings, run_accuracy

    settings = AccuracySettings(
        style=args.style,
        data_seed=args.data_seed,
        seeds=args.seeds,
        out=args.out,
        work_dir=args.work_dir,
        data_dir=args.data_dir,
        overrides=args.override,
        ablations=args.ablations,
        only=args.only,
        jobs=args.jobs,
        threads=args.threads,
        precision=args.precision,
        dry_run=args.dry_run,
        command=command,
    )
    try:
        settings.check()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run_accuracy(settings)


if __name__ == "__main__":
    sys.exit(main())
