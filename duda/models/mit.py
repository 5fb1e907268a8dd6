"""Mix Transformer (MiT), the hierarchical encoder of SegFormer.

Module and parameter names deliberately mirror the official SegFormer release
(``patch_embed1.proj``, ``block1.0.attn.kv``, ``norm1`` ...) so that the published
ImageNet ``mit_bX.pth`` checkpoints load without any key remapping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import DropPath, to_2tuple, trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["MIT_SETTINGS", "MixVisionTransformer", "MiTSettings", "build_mit"]


@dataclass(frozen=True)
class MiTSettings:
    """Architecture hyper-parameters of one published MiT variant."""

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    mlp_ratios: tuple[int, int, int, int] = (4, 4, 4, 4)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)


_WIDE = (64, 128, 320, 512)
MIT_SETTINGS: dict[str, MiTSettings] = {
    "mit_b0": MiTSettings(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    "mit_b1": MiTSettings(embed_dims=_WIDE, depths=(2, 2, 2, 2)),
    "mit_b2": MiTSettings(embed_dims=_WIDE, depths=(3, 4, 6, 3)),
    "mit_b3": MiTSettings(embed_dims=_WIDE, depths=(3, 4, 18, 3)),
    "mit_b4": MiTSettings(embed_dims=_WIDE, depths=(3, 8, 27, 3)),
    "mit_b5": MiTSettings(embed_dims=_WIDE, depths=(3, 6, 40, 3)),
}


def _tokens_to_map(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, N, C) -> (B, C, H, W); convolutions inside the transformer need the 2-D layout."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], height, width)


class DWConv(nn.Module):
    """3x3 depthwise conv inside the MLP; it is MiT's only source of positional information."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.dwconv(_tokens_to_map(x, height, width))
        return x.flatten(2).transpose(1, 2)


class MixFFN(nn.Module):
    """Linear -> depthwise conv -> GELU -> Linear (the "Mix-FFN" of the paper)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = DWConv(hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.act(self.dwconv(self.fc1(x), height, width))
        x = self.drop(x)
        return self.drop(self.fc2(x))


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys/values come from a spatially reduced sequence.

    Reducing K/V by ``sr_ratio**2`` is what makes attention affordable at stride 4.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        sr_ratio: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, tokens, dim = x.shape
        head_dim = dim // self.num_heads
        q = self.q(x).reshape(batch, tokens, self.num_heads, head_dim).transpose(1, 2)
        if self.sr_ratio > 1:
            reduced = self.sr(_tokens_to_map(x, height, width)).flatten(2).transpose(1, 2)
            x = self.norm(reduced)
        kv = self.kv(x).reshape(batch, -1, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, kv[0], kv[1], dropout_p=self.attn_drop if self.training else 0.0
        )
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj_drop(self.proj(out))


class Block(nn.Module):
    """Pre-norm transformer block (attention + Mix-FFN), each branch with stochastic depth."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        sr_ratio: int,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = EfficientSelfAttention(
            dim, num_heads, sr_ratio, qkv_bias, attn_drop, drop, norm_eps=norm_eps
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width))
        return x + self.drop_path(self.mlp(self.norm2(x), height, width))


class OverlapPatchEmbed(nn.Module):
    """Strided conv whose kernel is larger than its stride, so neighbouring patches overlap.

    The padding (``kernel // 2``) lets the output size follow the input for any image
    size, e.g. ``ceil(H / 4)`` for the first stage.
    """

    def __init__(
        self, in_chans: int, embed_dim: int, patch_size: int, stride: int, norm_eps: float = 1e-6
    ) -> None:
        super().__init__()
        kernel = to_2tuple(patch_size)
        self.proj = nn.Conv2d(
            in_chans,
            embed_dim,
            kernel_size=kernel,
            stride=stride,
            padding=(kernel[0] // 2, kernel[1] // 2),
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        height, width = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), height, width


class MixVisionTransformer(nn.Module):
    """Four-stage MiT encoder returning NCHW feature maps at strides 4, 8, 16 and 32."""

    def __init__(
        self,
        embed_dims: Sequence[int] = (32, 64, 160, 256),
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        mlp_ratios: Sequence[float] = (4, 4, 4, 4),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        in_chans: int = 3,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.channels: list[int] = list(embed_dims)
        self.strides: list[int] = [4, 8, 16, 32]
        self.depths = list(depths)
        self.grad_checkpointing = False
        # Stochastic depth grows linearly over *all* blocks, not per stage.
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        prev_dim, cursor = in_chans, 0
        for i, (dim, depth) in enumerate(zip(embed_dims, depths, strict=True), start=1):
            patch, stride = (7, 4) if i == 1 else (3, 2)
            self.add_module(
                f"patch_embed{i}", OverlapPatchEmbed(prev_dim, dim, patch, stride, norm_eps)
            )
            blocks = [
                Block(
                    dim,
                    num_heads[i - 1],
                    mlp_ratios[i - 1],
                    sr_ratios[i - 1],
                    qkv_bias=qkv_bias,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=rates[cursor + j],
                    norm_eps=norm_eps,
                )
                for j in range(depth)
            ]
            self.add_module(f"block{i}", nn.ModuleList(blocks))
            self.add_module(f"norm{i}", nn.LayerNorm(dim, eps=norm_eps))
            prev_dim, cursor = dim, cursor + depth
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # Same scheme as the reference implementation, so from-scratch runs are comparable.
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them.

        Per block, so that only one block's activations live at a time during backward;
        non-reentrant so that it works whether or not the input requires grad. Drop-path draws
        the same mask in the recomputation because the RNG state is replayed.
        """
        self.grad_checkpointing = enable

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        recompute = self.grad_checkpointing and torch.is_grad_enabled()
        for i in range(1, len(self.depths) + 1):
            x, height, width = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"block{i}"):
                if recompute:
                    x = checkpoint(blk, x, height, width, use_reentrant=False)
                else:
                    x = blk(x, height, width)
            x = getattr(self, f"norm{i}")(x)
            x = _tokens_to_map(x, height, width).contiguous()
            outs.append(x)
        return outs


def build_mit(name: str, drop_path_rate: float = 0.1, **kwargs: object) -> MixVisionTransformer:
    """Instantiate a published variant; extra kwargs override the constructor defaults."""
    if name not in MIT_SETTINGS:
        raise ValueError(f"unknown MiT variant {name!r}; known: {sorted(MIT_SETTINGS)}")
    s = MIT_SETTINGS[name]
    return MixVisionTransformer(
        embed_dims=s.embed_dims,
        depths=s.depths,
        num_heads=s.num_heads,
        mlp_ratios=s.mlp_ratios,
        sr_ratios=s.sr_ratios,
        drop_path_rate=drop_path_rate,
        **kwargs,  # type: ignore[arg-type]
    )
