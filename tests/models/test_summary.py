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


def test_resnet101_json_line(capsys):
    assert main(["resnet101", "--size", "512x512", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["channels"] == [256, 512, 1024, 2048]
    assert info["strides"] == [4, 8, 8, 8]  # output stride 8: layer3/4 dilated, not strided
    # torchvision's ResNet-101 has 44,549,160 parameters. Without the classifier
    # (2048 * 1000 + 1000) and with the v1c stem (3x3 convs 3->32->32->64 + two BNs of 32,
    # 864 + 64 + 9216 + 64 + 18432) in place of the 7x7 conv (3 * 64 * 49):
    assert info["params"] == 44_549_160 - 2_049_000 + 28_640 - 9_408
    assert info["flops"] > 0


def test_timm_name_json_line(capsys):
    assert main(["mobilenetv3_large_100", "--size", "64x64", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["channels"] == [24, 40, 112, 960]
    assert info["strides"] == [4, 8, 16, 32]
    # torchvision's MobileNetV3-Large: 5,483,032 parameters; features_only drops the
    # 960->1280 head conv (with bias) and the 1280->1000 classifier.
    assert info["params"] == 5_483_032 - (960 * 1280 + 1280) - (1280 * 1000 + 1000)


def test_deeplabv2_head_adds_its_four_branches(capsys):
    assert main(["resnet18", "--size", "64x64", "--head", "deeplabv2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Four 3x3 convs 512 -> 19 with bias on the last stage.
    assert info["segmentor_params"] - info["params"] == 4 * (512 * 19 * 9 + 19)
