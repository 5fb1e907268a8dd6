"""`python -m duda.models.table`: the README backbone table and its marker block."""

from __future__ import annotations

from pathlib import Path

import pytest

from duda.models.table import BEGIN, END, main, markdown_table, shipped_backbones


def test_shipped_backbones_project_first_then_timm() -> None:
    names = shipped_backbones()
    assert names[:9] == [*(f"mit_b{i}" for i in range(6)), "resnet18", "resnet50", "resnet101"]
    assert names[9:] == sorted(names[9:]) and "efficientvit_b1" in names[9:]


def test_row_figures() -> None:
    table = markdown_table(["resnet18"], (64, 64)).splitlines()
    assert table[0].startswith("| `model/backbone=` | params (M) | GFLOPs at 64×64 |")
    # ResNet-18 v1c without classifier: 11,689,512 (torchvision) - 513,000 (fc) + 19,232 (stem).
    assert table[2].startswith("| `resnet18` | 11.20 |")
    assert table[2].endswith("| [64, 128, 256, 512] | [4, 8, 8, 8] |")


def test_readme_block_is_replaced_in_place(tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n")
    assert main(["--size", "32x32", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old table" not in text
    assert text.startswith("# x\n\nbefore\n" + BEGIN + "\n| `model/backbone=`")
    assert text.endswith(END + "\nafter\n")
    assert text.count("| `mit_b") == 6


@pytest.mark.parametrize("content", ["no markers here", f"{BEGIN}\n{END}\n{BEGIN}\n{END}"])
def test_readme_without_one_marker_block_is_an_error(tmp_path: Path, capsys, content: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(content)
    assert main(["--size", "32x32", "--readme", str(readme)]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert readme.read_text() == content
