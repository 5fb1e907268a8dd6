"""The memory/speed levers change how a model runs, never what it computes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from duda.models import Segmentor, build_head, build_segmentor
from duda.models.backbones import build_backbone
from duda.models.levers import apply_levers

# (backbone, head): a transformer with stochastic depth and dropout (the recomputation must
# replay the same random draws), and a BatchNorm CNN at output stride 8. Not the DAFormer head:
# there a float32 rounding difference can flip a ReLU at zero, and on a small map a dilation-18
# tap sees so few pixels that its gradient then moves by ~0.5 % (float64 agrees to 1e-15, but
# float64 depthwise convolutions are too slow on CPU for the fast suite).
PAIRS = [("mit_b0", "segformer"), ("resnet18", "deeplabv2")]


def _model(backbone: str, head: str) -> Segmentor:
    torch.manual_seed(0)
    return build_segmentor(
        {"name": backbone, "pretrained": None, "drop_path_rate": 0.2},
        {"name": head, **({"embed_dim": 32, "dropout": 0.1} if head != "deeplabv2" else {})},
        num_classes=4,
    ).train()


def _step(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and parameter gradients of one training forward/backward, with fixed RNG."""
    model.zero_grad()
    torch.manual_seed(1)
    out = model(x)
    (out.square().mean() + out.mean()).backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _assert_same_step(plain: nn.Module, levered: nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32)
    out_a, grads_a = _step(plain, x)
    out_b, grads_b = _step(levered, x.clone())
    torch.testing.assert_close(out_b, out_a, rtol=1e-4, atol=1e-5)
    assert grads_b.keys() == grads_a.keys()
    # Relative to the largest gradient (float32 sums in another order differ by ~1e-6 of it),
    # so that tensors whose gradients are all near zero are not over-judged.
    scale = max(g.abs().max().item() for g in grads_a.values())
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=0, atol=1e-5 * scale, msg=name)


def _count_calls(module: nn.Module) -> list[int]:
    # A pre-hook: the recomputation stops early once it has what backward needs, so a module's
    # forward (post-)hooks may never run a second time.
    calls = [0]
    module.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize(("backbone", "head"), PAIRS)
def test_grad_checkpointing_same_outputs_and_gradients(backbone: str, head: str) -> None:
    plain = _model(backbone, head)
    levered = apply_levers(copy.deepcopy(plain), grad_checkpointing=True)
    _assert_same_step(plain, levered)


@pytest.mark.parametrize(("backbone", "head"), PAIRS)
def test_grad_checkpointing_recomputes_in_backward(backbone: str, head: str) -> None:
    model = apply_levers(_model(backbone, head), grad_checkpointing=True)
    # A checkpointed module runs twice per step: forward, then again during backward.
    inner = model.backbone.block1[0] if backbone.startswith("mit") else model.backbone.model.layer2
    calls = _count_calls(inner)
    model(torch.randn(1, 3, 32, 32)).sum().backward()
    assert calls[0] == 2
    # Not under no_grad: evaluation pays nothing for the lever.
    calls[0] = 0
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 32, 32))
    assert calls[0] == 1


@pytest.mark.parametrize(("backbone", "head"), PAIRS)
def test_channels_last_same_outputs_and_gradients(backbone: str, head: str) -> None:
    plain = _model(backbone, head)
    levered = apply_levers(copy.deepcopy(plain), channels_last=True)
    convs = [m for m in levered.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    _assert_same_step(plain, levered)


def test_backbone_without_checkpointing_is_a_clear_error() -> None:
    class Plain(nn.Module):
        channels = [3]
        strides = [1]

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [x]

    model = Segmentor(Plain(), build_head("deeplabv2", [3], 2))
    with pytest.raises(ValueError, match="grad_checkpointing=true.*Plain.*set it to false"):
        apply_levers(model, grad_checkpointing=True)


def test_timm_getter_models_delegate_checkpointing() -> None:
    # ViT-style features_only wrappers hold the switch on the wrapped model.
    backbone = build_backbone("vit_tiny_patch16_224", img_size=32, drop_path_rate=0.0)
    assert not hasattr(backbone.model, "set_grad_checkpointing")
    backbone.set_grad_checkpointing(True)
    assert backbone.model.model.grad_checkpointing


def test_compile_keeps_type_and_state_dict_keys() -> None:
    model = _model("mit_b0", "segformer")
    keys = list(model.state_dict())
    compiled = apply_levers(model, compile=True)
    assert compiled is model and type(model) is Segmentor
    assert list(model.state_dict()) == keys
    assert model._compiled_call_impl is not None  # compiled lazily at the first call


@pytest.mark.slow
def test_compiled_forward_matches_eager() -> None:
    eager = _model("mit_b0", "segformer").eval()
    compiled = apply_levers(copy.deepcopy(eager), compile=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-4, atol=1e-5)
