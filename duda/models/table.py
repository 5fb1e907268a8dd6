"""`python -m duda.models.table [--size HxW] [--readme README.md]`: the README's backbone table.

One row per shipped `conf/model/backbone/*.yaml`, figures from the same `summarize_model` that
`python -m duda.models.summary NAME --size 512x512 --json` prints, so the table is regenerated
(`make model-table`), never typed. With `--readme` the table replaces whatever stands between
the two marker comments of that file; without it the markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from omegaconf import OmegaConf

from duda.models.backbones import BACKBONES
from duda.models.summary import _parse_size, summarize_model

BEGIN = "<!-- model-table:begin (make model-table) -->"
END = "<!-- model-table:end -->"
_CONF = Path(__file__).resolve().parents[2] / "conf" / "model" / "backbone"


def shipped_backbones(conf_dir: Path = _CONF) -> list[str]:
    """Backbone names of the config files: the project's own first, in factory order."""
    names = {OmegaConf.load(p).name for p in conf_dir.glob("*.yaml")}
    own = [n for n in BACKBONES if n in names]
    return own + sorted(names - set(own))


def markdown_table(names: list[str], size_hw: tuple[int, int]) -> str:
    h, w = size_hw
    lines = [
        f"| `model/backbone=` | params (M) | GFLOPs at {h}×{w} | channels | strides |",
        "|---|---:|---:|---|---|",
    ]
    for name in names:
        info = summarize_model(name, size_hw)
        lines.append(
            f"| `{name}` | {info['params'] / 1e6:.2f} | {info['flops'] / 1e9:.1f} "
            f"| {info['channels']} | {info['strides']} |"
        )
    return "\n".join(lines)


_BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)


def replace_between_markers(text: str, table: str) -> str:
    if len(_BLOCK.findall(text)) != 1:
        raise ValueError(f"expected exactly one '{BEGIN}' ... '{END}' block")
    return _BLOCK.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=_parse_size, default=(512, 512), help="input HxW")
    parser.add_argument("--readme", type=Path, default=None, help="file to update in place")
    args = parser.parse_args(argv)
    if args.readme is None:
        print(markdown_table(shipped_backbones(), args.size))
        return 0
    text = args.readme.read_text()
    try:
        replace_between_markers(text, "")  # a file without its block fails before any work
    except ValueError as err:
        print(f"error: {args.readme}: {err}", file=sys.stderr)
        return 2
    table = markdown_table(shipped_backbones(), args.size)
    args.readme.write_text(replace_between_markers(text, table))
    print(f"updated the backbone table in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
