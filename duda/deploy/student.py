"""The network a deployment runs: RGB pixels in, logits at the input's size out.

Why the ImageNet normalisation is inside: an exported file should be usable without this
project's code, and the mean/std are the easiest thing to get subtly wrong on the other side.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from duda.data.transforms import MEAN, STD
from duda.evaluate import load_model
from duda.models.segmentor import Segmentor

INPUT_NAME = "image"  # float32 N x 3 x H x W, RGB, 0-255
OUTPUT_NAME = "logits"  # float32 N x C x H x W


class DeployableStudent(nn.Module):
    """A trained segmentor behind the normalisation its training used."""

    def __init__(self, segmentor: Segmentor) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.segmentor.predict((image - self.mean) / self.std)


def load_student(checkpoint: str | Path) -> tuple[DeployableStudent, DictConfig]:
    """The `model_final.pt` network, on the CPU in eval mode, and its run config.

    Raises FileNotFoundError / ValueError naming the file when it is not a final checkpoint.
    """
    try:
        model, cfg = load_model(checkpoint, torch.device("cpu"))
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(
            f"{checkpoint} is not a readable torch checkpoint ({type(err).__name__}); expected "
            "the model_final.pt of a run"
        ) from err
    return DeployableStudent(model).eval(), cfg
