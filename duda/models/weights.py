"""Loading pretrained backbone weights from the checkpoint formats found in the wild.

Published MiT weights come as raw SegFormer state dicts, wrapped ones, full mmseg
segmentor checkpoints and Hugging Face files; ResNet weights as timm or mmseg ``ResNetV1c``
files. Normalising them here keeps the model code free of any remapping logic.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

__all__ = ["LoadReport", "convert_hf_state_dict", "hf_to_mit_key", "load_backbone_weights"]

_WRAPPER_KEYS = ("state_dict", "model")
# Heads of full segmentors / classifiers that never belong to a backbone.
_DROPPED_PREFIXES = ("decode_head.", "auxiliary_head.")
# Patch-embedding keys identify a HF Segformer file (legacy and transformers>=5 names);
# a bare "stages." prefix would also match e.g. timm ConvNeXt checkpoints.
_HF_MARKER = re.compile(
    r"^(segformer\.)?(encoder\.patch_embeddings\.\d+|stages\.\d+\.patch_embeddings)\."
)
_HF_NON_BACKBONE = ("classifier.", "decode_head.")
# mmseg/mmcv ResNetV1c keeps its deep stem, BN after the last conv included, in one `stem`
# Sequential; timm splits off that last BN as `bn1`. The rest of the names agree.
_MMSEG_V1C_STEM = {
    "stem.0.": "conv1.0.",
    "stem.1.": "conv1.1.",
    "stem.3.": "conv1.3.",
    "stem.4.": "conv1.4.",
    "stem.6.": "conv1.6.",
    "stem.7.": "bn1.",
}
# A BatchNorm step counter only matters with momentum=None; files without it are complete.
_OPTIONAL_SUFFIX = "num_batches_tracked"


class LoadReport(NamedTuple):
    """What did not line up between a checkpoint and a module."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]


# Legacy Hub names (transformers < 5 and every published ``nvidia/mit-bX`` file) and
# the names transformers >= 5 uses in memory. Order matters: first match wins.
_HF_BLOCK_RULES: tuple[tuple[str, str], ...] = (
    (r"layer_norm_1|layernorm_before", "norm1"),
    (r"layer_norm_2|layernorm_after", "norm2"),
    (r"attention\.self\.query|attention\.q_proj", "attn.q"),
    (r"attention\.self\.key|attention\.k_proj", "attn.k"),
    (r"attention\.self\.value|attention\.v_proj", "attn.v"),
    (r"attention\.self\.sr|attention\.sequence_reduction\.sequence_reduction", "attn.sr"),
    (r"attention\.self\.layer_norm|attention\.sequence_reduction\.layer_norm", "attn.norm"),
    (r"attention\.output\.dense|attention\.o_proj", "attn.proj"),
    (r"mlp\.dense1|mlp\.fc1", "mlp.fc1"),
    (r"mlp\.dense2|mlp\.fc2", "mlp.fc2"),
    (r"mlp\.dwconv\.dwconv", "mlp.dwconv.dwconv"),
)
_PATCH_RE = re.compile(
    r"^(?:encoder\.patch_embeddings\.(\d+)|stages\.(\d+)\.patch_embeddings)"
    r"\.(proj|layer_norm)\.(weight|bias)$"
)
_STAGE_NORM_RE = re.compile(
    r"^(?:encoder\.layer_norm\.(\d+)|stages\.(\d+)\.layer_norm)\.(weight|bias)$"
)
_BLOCK_RE = re.compile(
    r"^(?:encoder\.block\.(\d+)|stages\.(\d+)\.blocks)\.(\d+)\.(.+)\.(weight|bias)$"
)


def hf_to_mit_key(key: str) -> str:
    """Map one Hugging Face Segformer encoder key to this project's (official SegFormer) name.

    HF keeps separate key/value projections while MiT fuses them into ``attn.kv``; those two
    map to the intermediate names ``attn.k`` / ``attn.v``, which
    :func:`convert_hf_state_dict` concatenates. Raises ``ValueError`` for keys that are not
    part of the encoder so that silent mis-mappings cannot happen.
    """
    if key.startswith("segformer."):
        key = key[len("segformer.") :]
    # Each pattern has one stage group per naming scheme; exactly one of them matched.
    if m := _PATCH_RE.match(key):
        old, new, part, kind = m.groups()
        part = "proj" if part == "proj" else "norm"
        return f"patch_embed{int(old or new) + 1}.{part}.{kind}"
    if m := _STAGE_NORM_RE.match(key):
        old, new, kind = m.groups()
        return f"norm{int(old or new) + 1}.{kind}"
    if m := _BLOCK_RE.match(key):
        old, new, block, inner, kind = m.groups()
        for pattern, ours in _HF_BLOCK_RULES:
            if re.fullmatch(pattern, inner):
                return f"block{int(old or new) + 1}.{block}.{ours}.{kind}"
    raise ValueError(f"not a Hugging Face Segformer encoder key: {key!r}")


def convert_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a HF Segformer state dict to MiT names and fuse key/value into ``attn.kv``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(_HF_NON_BACKBONE) or key.startswith(
            tuple("segformer." + p for p in _HF_NON_BACKBONE)
        ):
            continue
        try:
            out[hf_to_mit_key(key)] = value
        except ValueError:
            out[key] = value  # surfaces later as "unexpected" instead of vanishing
    for k_name in [k for k in out if re.search(r"\.attn\.k\.(weight|bias)$", k)]:
        v_name = k_name.replace(".attn.k.", ".attn.v.")
        kv_name = k_name.replace(".attn.k.", ".attn.kv.")
        if v_name in out:
            out[kv_name] = torch.cat([out.pop(k_name), out.pop(v_name)], dim=0)
    return out


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(
            f"model weights {path} not found: put the ImageNet checkpoint there (directory "
            "paths.weights_dir, env DUDA_WEIGHTS) or set model.backbone.pretrained=null "
            "(model.large.backbone.pretrained=null for DUDA's large pair) to train from scratch"
        )
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"loading {path} needs the 'safetensors' package") from exc
        return load_file(str(path), device="cpu")
    try:
        # weights_only refuses arbitrary pickled objects: checkpoints are untrusted input.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"refusing to load {path}: it holds objects other than tensors/containers "
            f"(torch.load(weights_only=True) rejected it: {exc})"
        ) from exc


def _normalise(raw: Any, path: Path) -> dict[str, torch.Tensor]:
    state = raw
    while isinstance(state, dict):
        inner = next((k for k in _WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = state[inner]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not contain a state dict (got {type(state).__name__})")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state):  # full mmseg segmentor checkpoint
        state = {
            k.removeprefix("backbone."): v
            for k, v in state.items()
            if not k.startswith(_DROPPED_PREFIXES)
        }
    if any(_HF_MARKER.match(k) for k in state):
        state = convert_hf_state_dict(state)
    if "stem.0.weight" in state and "layer1.0.conv1.weight" in state:
        state = {_mmseg_v1c_to_timm(k): v for k, v in state.items()}
    return state


def _mmseg_v1c_to_timm(key: str) -> str:
    for old, new in _MMSEG_V1C_STEM.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def _summarise(names: list[str], label: str) -> str:
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f"{label} ({len(names)}): [{shown}]"


def load_backbone_weights(
    module: nn.Module,
    path: str | Path,
    strict: bool = True,
    adapt: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> LoadReport:
    """Load a backbone checkpoint into ``module`` whatever published format it is in.

    With ``strict`` a mismatch raises ``ValueError`` listing what differs; without it the
    compatible tensors are loaded and the differences are returned for logging. ``adapt``
    renames/prunes the normalised state dict for one module type (timm ``features_only``).
    """
    path = Path(path)
    state = _normalise(_read_file(path), path)
    if adapt is not None:
        state = adapt(state)
    own = module.state_dict()
    # The ImageNet classifier shipped with mit_bX.pth is irrelevant to a backbone.
    if not any(k.startswith("head.") for k in own):
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    # Module/checkpoint order (not sorted) so the first ten shown are the earliest layers.
    missing = [k for k in own if k not in state and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if strict and (missing or unexpected or mismatched):
        raise ValueError(
            f"checkpoint {path} does not match {type(module).__name__}:\n  "
            + "\n  ".join(
                [
                    _summarise(missing, "missing keys"),
                    _summarise(unexpected, "unexpected keys"),
                    _summarise(mismatched, "shape mismatches"),
                ]
            )
        )
    bad = {m.split(":", 1)[0] for m in mismatched}
    usable = {k: v for k, v in state.items() if k in own and k not in bad}
    module.load_state_dict(usable, strict=False)
    return LoadReport(missing, unexpected, mismatched)
