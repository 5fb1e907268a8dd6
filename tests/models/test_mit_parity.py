"""MiT against an independent implementation: Hugging Face ``SegformerModel``.

HF weights go through the project's real loading path (file on disk ->
``load_backbone_weights`` -> ``hf_to_mit_key``), so name mapping, key/value fusion and the
architecture are all checked at once.

HF builds every LayerNorm with PyTorch's default eps (1e-5) whereas the official MiT
uses 1e-6; our model is built with ``norm_eps=1e-5`` here so that any remaining
difference is an architectural one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from duda.models.mit import build_mit
from duda.models.weights import hf_to_mit_key, load_backbone_weights

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

ATOL = 1e-5
HF_EPS = 1e-5
CONFIGS = {
    "mit_b0": {"hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2]},
    "mit_b2": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 4, 6, 3]},
}


def _hf_config(variant: str, **extra: object) -> object:
    return transformers.SegformerConfig(
        num_attention_heads=[1, 2, 5, 8],
        sr_ratios=[8, 4, 2, 1],
        mlp_ratios=[4, 4, 4, 4],
        patch_sizes=[7, 3, 3, 3],
        strides=[4, 2, 2, 2],
        hidden_act="gelu",
        # Explicit softmax(QK^T)V in HF, so SDPA in ours is checked against plain math.
        attn_implementation="eager",
        **CONFIGS[variant],
        **extra,
    )


def _max_diffs(ours: list[torch.Tensor], ref: tuple[torch.Tensor, ...]) -> list[float]:
    assert len(ours) == len(ref) == 4
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape
    return [(a - b).abs().max().item() for a, b in zip(ours, ref, strict=True)]


@pytest.mark.parametrize(
    ("variant", "size"),
    [("mit_b0", (64, 96)), ("mit_b0", (75, 111)), ("mit_b2", (64, 64))],
)
def test_stage_outputs_match_huggingface(
    variant: str, size: tuple[int, int], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    hf = transformers.SegformerModel(_hf_config(variant)).eval()
    ckpt = tmp_path / "hf_encoder.pth"
    torch.save(hf.state_dict(), ckpt)
    ours = build_mit(variant, norm_eps=HF_EPS).eval()
    report = load_backbone_weights(ours, ckpt)
    assert report == ([], [], [])

    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ref = hf(pixel_values=x, output_hidden_states=True).hidden_states
        diffs = _max_diffs(ours(x), ref)
    assert max(diffs) < ATOL, diffs


def test_reshape_last_stage_false_gives_tokens_of_the_same_values(tmp_path: Path) -> None:
    torch.manual_seed(0)
    hf = transformers.SegformerModel(_hf_config("mit_b0", reshape_last_stage=False)).eval()
    ckpt = tmp_path / "hf_encoder.pth"
    torch.save(hf.state_dict(), ckpt)
    ours = build_mit("mit_b0", norm_eps=HF_EPS).eval()
    load_backbone_weights(ours, ckpt)

    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = hf(pixel_values=x, output_hidden_states=True).hidden_states
        feats = ours(x)
    # Without the reshape HF hands back the last stage as (B, H*W, C) tokens.
    last = feats[-1]
    assert ref[-1].shape == (1, last.shape[2] * last.shape[3], last.shape[1])
    tokens = last.flatten(2).transpose(1, 2)
    assert (tokens - ref[-1]).abs().max().item() < ATOL
    assert max(_max_diffs(feats[:3] + [last], (*ref[:3], last))) < ATOL


def test_hub_format_safetensors_of_full_segmentation_model(tmp_path: Path) -> None:
    # save_pretrained writes the legacy names used by the published nvidia/mit-bX and
    # segformer-bX files ("segformer.encoder.block...", separate key/value, decode_head).
    torch.manual_seed(0)
    hf = transformers.SegformerForSemanticSegmentation(_hf_config("mit_b0")).eval()
    hf.save_pretrained(tmp_path)
    ours = build_mit("mit_b0", norm_eps=HF_EPS).eval()
    assert load_backbone_weights(ours, tmp_path / "model.safetensors") == ([], [], [])

    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = hf.segformer(pixel_values=x, output_hidden_states=True).hidden_states
        assert max(_max_diffs(ours(x), ref)) < ATOL


def test_default_eps_only_differs_by_layernorm_eps(tmp_path: Path) -> None:
    torch.manual_seed(0)
    hf = transformers.SegformerModel(_hf_config("mit_b0")).eval()
    ckpt = tmp_path / "hf_encoder.pth"
    torch.save(hf.state_dict(), ckpt)
    ours = build_mit("mit_b0").eval()  # official eps 1e-6
    load_backbone_weights(ours, ckpt)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        diffs = _max_diffs(ours(x), hf(pixel_values=x, output_hidden_states=True).hidden_states)
    assert max(diffs) < 1e-3


@pytest.mark.parametrize(
    ("hf_key", "ours"),
    [
        ("encoder.patch_embeddings.0.proj.weight", "patch_embed1.proj.weight"),
        ("segformer.encoder.patch_embeddings.3.layer_norm.bias", "patch_embed4.norm.bias"),
        ("encoder.block.0.1.layer_norm_1.weight", "block1.1.norm1.weight"),
        ("encoder.block.2.5.attention.self.query.bias", "block3.5.attn.q.bias"),
        ("encoder.block.1.0.attention.self.key.weight", "block2.0.attn.k.weight"),
        ("encoder.block.1.0.attention.self.value.weight", "block2.0.attn.v.weight"),
        ("encoder.block.0.0.attention.self.sr.weight", "block1.0.attn.sr.weight"),
        ("encoder.block.0.0.attention.self.layer_norm.bias", "block1.0.attn.norm.bias"),
        ("encoder.block.3.2.attention.output.dense.weight", "block4.2.attn.proj.weight"),
        ("encoder.block.3.2.layer_norm_2.bias", "block4.2.norm2.bias"),
        ("encoder.block.1.1.mlp.dense1.weight", "block2.1.mlp.fc1.weight"),
        ("encoder.block.1.1.mlp.dwconv.dwconv.bias", "block2.1.mlp.dwconv.dwconv.bias"),
        ("encoder.block.1.1.mlp.dense2.weight", "block2.1.mlp.fc2.weight"),
        ("encoder.layer_norm.2.weight", "norm3.weight"),
        # transformers >= 5 names
        ("stages.0.patch_embeddings.proj.bias", "patch_embed1.proj.bias"),
        ("stages.1.blocks.0.layernorm_before.weight", "block2.0.norm1.weight"),
        (
            "stages.0.blocks.1.attention.sequence_reduction.layer_norm.weight",
            "block1.1.attn.norm.weight",
        ),
        ("stages.3.blocks.0.attention.o_proj.bias", "block4.0.attn.proj.bias"),
        ("stages.2.layer_norm.bias", "norm3.bias"),
    ],
)
def test_hf_key_mapping(hf_key: str, ours: str) -> None:
    assert hf_to_mit_key(hf_key) == ours


def test_hf_key_mapping_rejects_non_encoder_keys() -> None:
    with pytest.raises(ValueError, match="decode_head"):
        hf_to_mit_key("decode_head.linear_fuse.weight")
