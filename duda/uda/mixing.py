"""ClassMix and the strong photometric augmentation of DACS.

ClassMix pastes half of the classes of a labelled source crop onto an unlabelled target crop;
the mixed label is the source label where pasted and the teacher's pseudo-label elsewhere, the
mixed weight 1 where pasted and the pseudo-label weight elsewhere. The student then learns the
target appearance from pseudo-labels while the pasted source objects keep it anchored to real
labels. Colour jitter and blur are applied to the mixed image only (the teacher sees the clean
target crop), with the apply/skip decisions drawn once per iteration as the reference does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF

from duda.data.classes import IGNORE_INDEX
from duda.data.transforms import MEAN, STD


def _choose_half(classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """⌈n/2⌉ of the n given class IDs, uniformly without replacement."""
    n = classes.numel()
    order = torch.randperm(n, generator=generator)[: math.ceil(n / 2)]
    return classes[order.to(classes.device)]


def class_mix_masks(
    source_labels: torch.Tensor,
    generator: torch.Generator,
    batch_level: bool = False,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """N×1×H×W float masks, 1 where a chosen source class is pasted.

    Each sample pastes ⌈n/2⌉ of the n classes present in *its own* label (ignore excluded).
    `batch_level=True` reproduces the reference quirk (DAFormer issue #19): the class set is
    drawn from the whole batch's labels, 255 included, so a sample often pastes fewer than half
    of its own classes.
    """
    masks = []
    batch_classes = torch.unique(source_labels)
    for label in source_labels:
        if batch_level:
            candidates = batch_classes
        else:
            present = torch.unique(label)
            candidates = present[present != ignore_index]
        chosen = _choose_half(candidates.cpu(), generator).to(label.device)
        masks.append(torch.isin(label, chosen))
    return torch.stack(masks).unsqueeze(1).float()


def one_mix(mask: torch.Tensor, foreground: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """mask · foreground + (1 − mask) · background, for images (N×3×H×W), labels and weights
    (N×H×W, with an N×1×H×W mask); labels stay integers."""
    if foreground.dim() == 3:
        mask = mask.squeeze(1)
    mixed = mask * foreground + (1 - mask) * background
    return mixed.to(foreground.dtype) if not foreground.is_floating_point() else mixed


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    mean = images.new_tensor(MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(STD).view(1, 3, 1, 1)
    return ((images * std + mean) / 255.0).clamp(0, 1)


def _from_unit(images: torch.Tensor) -> torch.Tensor:
    mean = images.new_tensor(MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(STD).view(1, 3, 1, 1)
    return (images * 255.0 - mean) / std


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def blur_kernel_size(size: int) -> int:
    """The largest odd integer ≤ ⌈0.1 · size⌉ (51 for 512, 103 for 1024), as the reference."""
    k = math.ceil(0.1 * size)
    return k if k % 2 == 1 else k - 1


@dataclass
class StrongAugment:
    """Colour jitter (brightness, contrast, saturation in [1 − s, 1 + s], hue shift in
    [−s/2, s/2] of a turn, in that order, per-sample factors) and Gaussian blur
    (σ ~ U(0.15, 1.15) per sample), on normalised images.

    The reference applies jitter when its per-iteration draw exceeds 0.2 (so ~80% of
    iterations; its config key is misleadingly called a probability) and blur when its draw
    exceeds 0.5; here the probabilities of applying are given directly.
    """

    jitter_p: float = 0.8
    jitter_strength: float = 0.2
    blur_p: float = 0.5

    def draw(self, generator: torch.Generator) -> tuple[bool, bool]:
        """Apply jitter? Apply blur? Drawn once per iteration, shared by the batch."""
        u_jitter, u_blur = torch.rand(2, generator=generator).tolist()
        return u_jitter < self.jitter_p, u_blur < self.blur_p

    def __call__(
        self, images: torch.Tensor, jitter: bool, blur: bool, generator: torch.Generator
    ) -> torch.Tensor:
        if not (jitter or blur):
            return images
        unit = _to_unit(images.float())
        out = []
        s = self.jitter_strength
        for img in unit:
            if jitter and s > 0:
                img = TF.adjust_brightness(img, _uniform(generator, 1 - s, 1 + s))
                img = TF.adjust_contrast(img, _uniform(generator, 1 - s, 1 + s))
                img = TF.adjust_saturation(img, _uniform(generator, 1 - s, 1 + s))
                img = TF.adjust_hue(img, _uniform(generator, -s / 2, s / 2))
            if blur:
                sigma = _uniform(generator, 0.15, 1.15)
                kh, kw = blur_kernel_size(img.shape[-2]), blur_kernel_size(img.shape[-1])
                img = TF.gaussian_blur(img, kernel_size=[kw, kh], sigma=[sigma, sigma])
            out.append(img)
        return _from_unit(torch.stack(out)).to(images.dtype)
