"""EMA self-training: DACS, DAFormer and MIC as one method with switchable components.

`SelfTraining.train_step` follows the reference `forward_train` order (EMA update before any
forward; source CE (+ feature distance); teacher pseudo-labels on the clean target; ClassMix +
strong augmentation; mixed CE; masked-image consistency; one optimizer step). Each stage is a
method of its own so that DUDA can run the same stages for its large pair and share the
teacher's pseudo-labels and the mixed batch with its small student.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from duda.uda.ema import EMATeacher
from duda.uda.feature_distance import feature_distance, thing_mask
from duda.uda.losses import pixel_ce, resize_logits
from duda.uda.masking import block_mask, mask_images
from duda.uda.method import Batch, autocast, buffers_kept
from duda.uda.mixing import StrongAugment, class_mix_masks, one_mix
from duda.uda.pseudo_label import confusion, pseudo_label


@dataclass
class Components:
    """What is switched on, and how strongly (from the `uda` and `loss` config groups)."""

    ema_alpha: float = 0.999
    ema_buffers: bool = False
    teacher_bn_train: bool = True
    pseudo_threshold: float = 0.968
    per_image_confidence: bool = False
    mix_weight: float = 1.0
    batch_level_classes: bool = False  # reference_quirks: ClassMix classes from the whole batch
    augment: StrongAugment = field(default_factory=StrongAugment)
    fd_weight: float = 0.0  # 0 switches the ImageNet feature distance off
    fd_classes: tuple[int, ...] = ()
    fd_min_ratio: float = 0.75
    mic_weight: float = 0.0  # 0 switches masked-image consistency off
    mic_block: int = 32
    mic_ratio: float = 0.7


@dataclass
class TeacherOutput:
    """The teacher's view of the clean target crops, shared by every consumer of the step."""

    logits: torch.Tensor  # N×C×H×W at crop size
    label: torch.Tensor  # N×H×W argmax
    weight: torch.Tensor  # N×H×W confidence weight × border validity
    confident_share: torch.Tensor


@dataclass
class MixedBatch:
    image: torch.Tensor
    label: torch.Tensor
    weight: torch.Tensor
    mask: torch.Tensor  # N×1×H×W, 1 where source pixels were pasted


class SelfTraining:
    """A student, its EMA teacher and (for FD) a frozen copy of the initial backbone."""

    needs_target = True

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        components: Components,
        source_weight: float = 1.0,
        num_classes: int = 19,
        amp_dtype: torch.dtype | None = None,
        seed: int = 0,
    ):
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.c = components
        self.source_weight = source_weight
        self.num_classes = num_classes
        self.amp_dtype = amp_dtype
        self.generator = torch.Generator().manual_seed(seed)
        self.ema = EMATeacher(
            model, components.ema_alpha, components.ema_buffers, components.teacher_bn_train
        )
        self.imnet: nn.Module | None = None
        if components.fd_weight > 0:
            self.imnet = copy.deepcopy(model.backbone).eval().requires_grad_(False)

    # -- the algorithm box ---------------------------------------------------------------
    def train_step(self, source: Batch, target: Batch | None, it: int) -> dict[str, torch.Tensor]:
        assert target is not None, "self-training needs target batches"
        logs = {"ema/alpha": torch.tensor(self.update_teacher(it))}
        jitter, blur = self.c.augment.draw(self.generator)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logs |= self.learn_source(source)
        teacher = self.pseudo_labels(target)
        logs |= self.pseudo_label_logs(teacher, target, "teacher")
        mixed = self.mix(source, target, teacher, jitter, blur)
        logs |= self.learn_mixed(mixed)
        logs |= self.learn_masked(target, teacher)
        self.optimizer.step()
        self.scheduler.step()
        logs["loss/total"] = sum(v for k, v in logs.items() if k.startswith("loss/"))
        return logs

    # -- stages ----------------------------------------------------------------------------
    def update_teacher(self, it: int) -> float:
        return self.ema.update(self.model, it)

    def learn_source(self, source: Batch) -> dict[str, torch.Tensor]:
        """Source CE, plus the feature distance on the same forward pass."""
        with autocast(source["image"].device, self.amp_dtype):
            feats = self.model.forward_features(source["image"])
            logits = self.model.head(feats)
        loss = self.source_weight * pixel_ce(logits, source["label"])
        logs = {"loss/source": loss.detach()}
        if self.imnet is not None:
            with torch.no_grad(), autocast(source["image"].device, self.amp_dtype):
                ref = self.imnet(source["image"])[-1]
            mask = thing_mask(
                source["label"],
                feats[-1].shape[-2:],
                self.c.fd_classes,
                self.c.fd_min_ratio,
                self.num_classes,
            )
            fd = self.c.fd_weight * feature_distance(feats[-1], ref, mask)
            logs["loss/fd"] = fd.detach()
            loss = loss + fd
        loss.backward()
        return logs

    @torch.no_grad()
    def pseudo_labels(self, target: Batch) -> TeacherOutput:
        image = target["image"]
        teacher = self.ema.prepare_forward()
        with autocast(image.device, self.amp_dtype):
            logits = teacher(image)
        logits = resize_logits(logits.float(), image.shape[-2:])
        label, weight, share = pseudo_label(
            logits, self.c.pseudo_threshold, self.c.per_image_confidence, target.get("valid")
        )
        return TeacherOutput(logits, label, weight, share)

    def mix(
        self, source: Batch, target: Batch, teacher: TeacherOutput, jitter: bool, blur: bool
    ) -> MixedBatch:
        masks = class_mix_masks(source["label"], self.generator, self.c.batch_level_classes)
        image = one_mix(masks, source["image"], target["image"])
        label = one_mix(masks, source["label"], teacher.label)
        weight = one_mix(masks, torch.ones_like(teacher.weight), teacher.weight)
        image = self.c.augment(image, jitter, blur, self.generator)
        return MixedBatch(image, label, weight, masks)

    def learn_mixed(self, mixed: MixedBatch) -> dict[str, torch.Tensor]:
        with autocast(mixed.image.device, self.amp_dtype):
            logits = self.model(mixed.image)
        loss = self.c.mix_weight * pixel_ce(logits, mixed.label, mixed.weight)
        loss.backward()
        return {"loss/mix": loss.detach()}

    def learn_masked(self, target: Batch, teacher: TeacherOutput) -> dict[str, torch.Tensor]:
        """MIC: the strongly augmented, block-masked target must still give the pseudo-labels."""
        if self.c.mic_weight <= 0:
            return {}
        image = target["image"]
        jitter, blur = self.c.augment.draw(self.generator)
        image = self.c.augment(image, jitter, blur, self.generator)
        n, _, h, w = image.shape
        keep = block_mask(n, h, w, self.c.mic_block, self.c.mic_ratio, self.generator)
        with autocast(image.device, self.amp_dtype):
            logits = self.model(mask_images(image, keep))
        loss = self.c.mic_weight * pixel_ce(logits, teacher.label, teacher.weight)
        loss.backward()
        return {"loss/mic": loss.detach()}

    # -- logging ---------------------------------------------------------------------------
    @torch.no_grad()
    def pseudo_label_view(self, target: Batch, it: int) -> torch.Tensor:
        with buffers_kept(self.ema.model):
            return self.pseudo_labels(target).label

    def pseudo_label_logs(
        self, teacher: TeacherOutput, target: Batch, name: str
    ) -> dict[str, torch.Tensor]:
        """Confident share, and where the target crop has labels (never used for training),
        the confusion of the pseudo-labels against them for accuracy and per-class IoU."""
        logs = {f"pl/{name}_confident": teacher.confident_share.detach()}
        if "label" in target:
            logs[f"confusion/pl_{name}"] = confusion(
                teacher.label, target["label"], self.num_classes
            )
        return logs

    # -- Method protocol -----------------------------------------------------------------
    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def eval_model(self) -> nn.Module:
        return self.model

    def state_dict(self) -> dict[str, Any]:
        """The student, its EMA teacher, optimizer, schedule and the generator of mixing and
        augmentation. The frozen ImageNet copy of feature distance is not stored: a rebuilt
        run makes it again, identically, from the same seed and weight file."""
        return {
            "model": self.model.state_dict(),
            "teacher": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
