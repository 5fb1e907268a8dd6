"""`python -m duda.models.summary` figures against hand-derivable values."""

import json

import pytest
import torch

from duda.models.summary import count_flops, main


def test_flops_of_a_single_conv_match_hand_count():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    # 2 FLOPs per multiply-add: 2 * out_ch * in_ch * k * k * H * W
    assert count_flops(conv, (16, 20)) == 2 * 8 * 3 * 9 * 16 * 20


def test_mit_b0_json_line(capsys):
    assert main(["mit_b0", "--size", "64x64", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["channels"] == [32, 64, 160, 256]
    assert info["strides"] == [4, 8, 16, 32]
    assert info["params"] == pytest.approx(3.32e6, rel=0.01)
    assert info["flops"] > 0


def test_unknown_name_and_bad_size(capsys):
    assert main(["no_such_net"]) == 2
    assert "unknown backbone" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["mit_b0", "--size", "64"])
