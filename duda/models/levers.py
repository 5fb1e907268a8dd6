"""Memory and speed levers that leave a model's function unchanged (``model.*`` in the config).

They are applied in one place, after the network is built and before it is moved to a device,
so every trained network of a method (student, teacher, distillation student) gets the same
treatment from the same three config keys.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

__all__ = ["apply_levers"]

M = TypeVar("M", bound=nn.Module)


def apply_levers(
    model: M,
    *,
    channels_last: bool = False,
    grad_checkpointing: bool = False,
    compile: bool = False,
) -> M:
    """Switch the levers on ``model`` in place and return it.

    - ``channels_last``: parameters and buffers in NHWC memory format, which tensor-core
      convolutions prefer under bf16/fp16. Inputs need no conversion: a convolution with
      channels-last weights produces channels-last output.
    - ``grad_checkpointing``: the backbone recomputes activations in backward instead of
      storing them (MiT per block, timm models through their ``set_grad_checkpointing``);
      a backbone without the switch is an error, not a silent no-op.
    - ``compile``: ``nn.Module.compile()``, in place, so that the module type, its methods
      (``predict``, ``param_groups``) and its ``state_dict`` keys stay as they are (a
      ``torch.compile(model)`` wrapper would prefix every key with ``_orig_mod.``).
      Compilation happens lazily at the first forward. A ``copy.deepcopy`` of the model
      (an EMA teacher) is not compiled: apply the levers to the copy as well.
    """
    if grad_checkpointing:
        backbone = getattr(model, "backbone", model)
        switch = getattr(backbone, "set_grad_checkpointing", None)
        if switch is None:
            raise ValueError(
                f"model.grad_checkpointing=true, but the backbone {type(backbone).__name__} "
                "has no set_grad_checkpointing(); set it to false"
            )
        switch(True)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    return model
