"""Hydra-style `key=value` arguments for the small deployment commands.

Why not Hydra itself: these commands have a handful of flat options and no config tree, and a
bad argument should end with one line naming what was expected (exit code 2), not a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

EXIT_USAGE = 2  # argparse's code for bad arguments; bad input files use it too


class UsageError(ValueError):
    """A bad command line or a bad input file: the message says what was expected."""


@dataclass(frozen=True)
class Option:
    name: str
    parse: Callable[[str], Any]
    default: Any = None
    metavar: str = "VALUE"
    help: str = ""
    required: bool = False


def parse_args(argv: Sequence[str], options: Sequence[Option]) -> dict[str, Any]:
    """`["checkpoint=a.pt", "format=onnx"]` -> {"checkpoint": ..., "format": ..., defaults}."""
    known = {o.name: o for o in options}
    values: dict[str, Any] = {o.name: o.default for o in options}
    given: set[str] = set()
    for arg in argv:
        key, sep, raw = arg.partition("=")
        key = key.lstrip("+")  # tolerate Hydra's `+key=value`
        if not sep or not key:
            raise UsageError(f"expected key=value arguments, got {arg!r}")
        if key not in known:
            raise UsageError(f"unknown key {key!r}; expected one of {', '.join(known)}")
        if key in given:
            raise UsageError(f"{key} is given twice")
        try:
            values[key] = known[key].parse(raw)
        except ValueError as err:
            raise UsageError(f"{key}={raw!r}: {err}") from None
        given.add(key)
    missing = [o for o in options if o.required and o.name not in given]
    if missing:
        need = ", ".join(f"{o.name}={o.metavar}" for o in missing)
        raise UsageError(f"missing {need}")
    return values


def usage(prog: str, doc: str, options: Sequence[Option]) -> str:
    lines = ["usage: python -m " + " ".join([prog, *(_shape(o) for o in options)]), ""]
    for o in options:
        default = "" if o.required else f" (default: {_show(o.default)})"
        lines.append(f"  {o.name + '=' + o.metavar:<22} {o.help}{default}")
    return "\n".join([*lines, "", doc.strip()])


def _shape(o: Option) -> str:
    return f"{o.name}={o.metavar}" if o.required else f"[{o.name}={o.metavar}]"


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return "none" if value is None else str(value)


# --------------------------------------------------------------------------- value parsers


def path(raw: str) -> Path:
    if not raw:
        raise ValueError("expected a path")
    return Path(raw).expanduser()


def size_hw(raw: str) -> tuple[int, int]:
    """`512x1024`, `512,1024` or `[512,1024]`: height then width, as everywhere in the configs."""
    parts = raw.strip("[]()").replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ValueError("expected HEIGHTxWIDTH, e.g. 512x1024") from None
    if h < 1 or w < 1:
        raise ValueError("expected a positive HEIGHTxWIDTH")
    return h, w


def optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`none`/`null` -> None, anything else through `parse`."""
    return lambda raw: None if raw.lower() in ("none", "null") else parse(raw)


RUN = "run"  # an option value meaning: what the checkpoint's run config says


def or_run(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda raw: RUN if raw == RUN else parse(raw)


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return raw

    return parse


def device(raw: str) -> str:
    """`auto` or a torch device name; whether CUDA exists is checked when it is used."""
    if raw != "auto":
        try:
            torch.device(raw)
        except RuntimeError:
            raise ValueError("expected auto, cpu, cuda or cuda:N") from None
    return raw


def boolean(raw: str) -> bool:
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ValueError("expected true or false")


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError("expected an integer >= 1")
    return value


def non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # also rejects nan
        raise ValueError("expected a number >= 0")
    return value
