"""DUDA: a large EMA teacher, its large student and the small deployed student (docs/method.md).

Stage 1, pre-adaptation (t < distill.pre_iters), one iteration:

    1. EMA-update the teacher from the large student            (before any forward)
    2. large student: base-UDA losses (source CE, mixed CE, FD, MIC) — `SelfTraining` stages;
       the teacher's pseudo-labels and the ClassMix batch are made once and shared
    3. small student: source CE + λ_pl(t)·mixed CE with the teacher's hard labels
                      + λ_kd(t)·τ²·KL(teacher ‖ student) on the target pixels of the mixed crop
    4. one optimizer step for each student

Stage 2, fine-tuning (t ≥ pre_iters): the large student is retired (its weights, gradients and
optimizer state are freed), the teacher is frozen (unless `finetune.update_teacher`), and the
teacher plus every extra teacher label the target crop; their fused probabilities give the KD
target and the hard label of the inconsistency loss, whose class weights grow with the
student's disagreement with the fused label.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from duda.data.classes import CLASS_NAMES, IGNORE_INDEX
from duda.distill.inconsistency import InconsistencyTracker, inconsistency_loss
from duda.distill.kd import kd_loss, soften
from duda.distill.schedules import Schedule
from duda.uda.losses import pixel_ce, resize_logits
from duda.uda.method import Batch, autocast, buffers_kept
from duda.uda.pseudo_label import confusion, pseudo_label
from duda.uda.self_training import MixedBatch, SelfTraining, TeacherOutput


class DUDA:
    needs_target = True

    def __init__(
        self,
        large: SelfTraining,
        student: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        pre_iters: int,
        kd_schedule: Schedule,
        pl_schedule: Schedule | None,
        fuse,
        tracker: InconsistencyTracker | None,
        extra_teachers: list[nn.Module] | None = None,
        tau: float = 1.0,
        kd_weight: float = 1.0,
        source_weight: float = 1.0,
        inconsistency_weight: float = 1.0,
        finetune_source_weight: float = 1.0,
        update_teacher: bool = False,
        student_in_stage1: bool = True,
        amp_dtype: torch.dtype | None = None,
        finetune_mix: bool = False,
    ):
        self.large = large
        self.student = student
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.pre_iters = pre_iters
        self.kd_schedule = kd_schedule
        self.pl_schedule = pl_schedule
        self.fuse = fuse
        self.tracker = tracker
        self.extra_teachers = extra_teachers or []
        self.tau = tau
        self.kd_weight = kd_weight
        self.source_weight = source_weight
        self.inconsistency_weight = inconsistency_weight
        self.finetune_source_weight = finetune_source_weight
        self.update_teacher = update_teacher
        self.student_in_stage1 = student_in_stage1  # false: the "no pre-adaptation" ablation
        self.finetune_mix = finetune_mix
        self.amp_dtype = amp_dtype
        self.num_classes = large.num_classes
        self.large_retired = False

    def train_step(self, source: Batch, target: Batch | None, it: int) -> dict[str, torch.Tensor]:
        assert target is not None, "DUDA needs target batches"
        if it < self.pre_iters:
            return self.pre_adaptation_step(source, target, it)
        return self.finetune_step(source, target, it)

    # -- stage 1 ---------------------------------------------------------------------------
    def pre_adaptation_step(self, source: Batch, target: Batch, it: int) -> dict[str, Any]:
        large = self.large
        logs: dict[str, Any] = {"ema/alpha": torch.tensor(large.update_teacher(it))}
        jitter, blur = large.c.augment.draw(large.generator)
        large.model.train()
        self.student.train()
        large.optimizer.zero_grad(set_to_none=True)
        self.optimizer.zero_grad(set_to_none=True)

        logs |= _prefixed("large", large.learn_source(source))
        teacher = large.pseudo_labels(target)  # one teacher forward serves both students
        logs |= large.pseudo_label_logs(teacher, target, "teacher")
        mixed = large.mix(source, target, teacher, jitter, blur)  # one ClassMix for both
        logs |= _prefixed("large", large.learn_mixed(mixed))
        logs |= _prefixed("large", large.learn_masked(target, teacher))
        if self.student_in_stage1:
            logs |= self.learn_student_stage1(source, mixed, teacher, target, it)

        large.optimizer.step()
        large.scheduler.step()
        if self.student_in_stage1:
            self.optimizer.step()
            self.scheduler.step()
        else:  # the student's schedule runs on the global iteration, stepped or not
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Detected call of `lr_scheduler")
                self.scheduler.step()
        return _with_totals(logs)

    def learn_student_stage1(
        self, source: Batch, mixed: MixedBatch, teacher: TeacherOutput, target: Batch, it: int
    ) -> dict[str, torch.Tensor]:
        lam_kd = self.kd_schedule(it)
        lam_pl = self.pl_schedule(it) if self.pl_schedule is not None else self.large.c.mix_weight
        device = source["image"].device
        with autocast(device, self.amp_dtype):
            src_logits = self.student(source["image"])
        loss_src = self.source_weight * pixel_ce(src_logits, source["label"])
        loss_src.backward()
        with autocast(device, self.amp_dtype):
            mix_logits = self.student(mixed.image)
        loss_pl = lam_pl * pixel_ce(mix_logits, mixed.label, mixed.weight)
        # KD on the target pixels of the mixed crop: where nothing was pasted and the border
        # mask allows, the teacher's (clean-crop) distribution is the target.
        target_pixels = (1 - mixed.mask.squeeze(1)) * _valid(target, mixed.label)
        loss = loss_pl
        logs = {"loss/student_source": loss_src.detach(), "loss/student_pl": loss_pl.detach()}
        if lam_kd > 0 and self.kd_weight > 0:
            probs = soften(torch.softmax(teacher.logits, dim=1), self.tau)
            loss_kd = self.kd_weight * lam_kd * kd_loss(mix_logits, probs, self.tau, target_pixels)
            loss = loss + loss_kd
            logs["loss/student_kd"] = loss_kd.detach()
        loss.backward()
        logs["distill/lambda_kd"] = torch.tensor(lam_kd)
        logs["distill/lambda_pl"] = torch.tensor(lam_pl)
        logs["distill/agreement"] = _agreement(mix_logits, teacher.label, target_pixels)
        return logs

    # -- stage 2 ---------------------------------------------------------------------------
    def retire_large_student(self) -> None:
        """Free what only stage 1 needs: the large student, its gradients and optimizer state,
        and the frozen ImageNet copy of feature distance. The teacher stays."""
        if self.update_teacher or self.large_retired:
            return
        large = self.large
        large.optimizer.zero_grad(set_to_none=True)
        large.optimizer.state.clear()
        large.optimizer = None
        large.scheduler = None
        large.model = None
        large.imnet = None
        self.large_retired = True
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def finetune_step(self, source: Batch, target: Batch, it: int) -> dict[str, Any]:
        logs: dict[str, Any] = {}
        if self.update_teacher:  # the large pair keeps adapting, so the teacher keeps improving
            logs |= _prefixed("large", self.large.train_step(source, target, it))
        else:
            self.retire_large_student()
        self.student.train()
        self.optimizer.zero_grad(set_to_none=True)
        fused, teacher_label = self.teacher_targets(target, logs)
        label, weight, share = pseudo_label(
            fused.clamp_min(1e-12).log(),
            self.large.c.pseudo_threshold,
            self.large.c.per_image_confidence,
            target.get("valid"),
        )
        fused_view = TeacherOutput(fused, label, weight, share)
        logs |= self.large.pseudo_label_logs(fused_view, target, "fused")

        device = source["image"].device
        with autocast(device, self.amp_dtype):
            src_logits = self.student(source["image"])
        loss_src = self.finetune_source_weight * pixel_ce(src_logits, source["label"])
        loss_src.backward()
        image, hard, pixel_weight, valid = target["image"], label, weight, _valid(target, label)
        gt = target.get("label")
        if self.finetune_mix:  # the same strong view as stage 1; losses on its target pixels
            jitter, blur = self.large.c.augment.draw(self.large.generator)
            mixed = self.large.mix(source, target, fused_view, jitter, blur)
            pasted = mixed.mask.squeeze(1)
            image, hard, pixel_weight = mixed.image, mixed.label, mixed.weight
            valid = (1 - pasted) * valid
            if gt is not None:
                gt = gt.masked_fill(pasted.bool(), IGNORE_INDEX)
        with autocast(device, self.amp_dtype):
            tgt_logits = self.student(image)
        loss_kd = (
            self.kd_weight
            * self.kd_schedule(it)
            * kd_loss(tgt_logits, soften(fused, self.tau), self.tau, valid)
        )
        loss = loss_kd
        logs |= {"loss/student_source": loss_src.detach(), "loss/student_kd": loss_kd.detach()}
        if self.tracker is not None:
            self.tracker.update(tgt_logits.detach(), hard, valid)
            weights = self.tracker.loss_weights(hard, valid).to(device)
            loss_inc = self.inconsistency_weight * inconsistency_loss(
                tgt_logits, hard, weights, pixel_weight
            )
            loss = loss + loss_inc
            logs["loss/student_inconsistency"] = loss_inc.detach()
            logs |= {f"inconsistency/w/{c}": w for c, w in zip(CLASS_NAMES, weights, strict=True)}
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()

        student_pred = resize_logits(tgt_logits.detach(), label.shape[-2:]).argmax(1)
        logs["distill/lambda_kd"] = torch.tensor(self.kd_schedule(it))
        logs["distill/agreement"] = _agreement(tgt_logits, teacher_label, valid)
        if gt is not None:
            logs["confusion/student"] = confusion(student_pred, gt, self.num_classes)
        return _with_totals(logs)

    @torch.no_grad()
    def teacher_targets(
        self, target: Batch, logs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused probabilities of the teacher and every extra teacher on the clean target crop,
        and the teacher's own hard label (for agreement logging)."""
        teacher = self.large.pseudo_labels(target)
        logs |= self.large.pseudo_label_logs(teacher, target, "teacher")
        probs = [torch.softmax(teacher.logits, dim=1)]
        image = target["image"]
        for extra in self.extra_teachers:
            with autocast(image.device, self.amp_dtype):
                logits = extra(image)
            probs.append(torch.softmax(resize_logits(logits.float(), image.shape[-2:]), dim=1))
        return self.fuse(probs), teacher.label

    # -- Method protocol -------------------------------------------------------------------
    @torch.no_grad()
    def pseudo_label_view(self, target: Batch, it: int) -> torch.Tensor:
        """Stage 1: the teacher's label (what the student's mixed CE uses); stage 2: the
        argmax of the fused teachers (what the inconsistency loss uses)."""
        if it < self.pre_iters:
            return self.large.pseudo_label_view(target, it)
        with buffers_kept(self.large.ema.model):
            fused, _ = self.teacher_targets(target, {})
        return fused.argmax(1)

    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def eval_model(self) -> nn.Module:
        return self.student

    def state_dict(self) -> dict[str, Any]:
        """Everything stage 1 or 2 needs to continue: the stage (`large_retired`), the
        teacher, the large student with its optimizer until it retires, the student, and the
        inconsistency statistics. Extra teachers are frozen files, kept by reference (their
        paths are in the run's config). The teacher and the shared generator are stored once,
        at the top level, where `load_extra_teacher` also finds the teacher."""
        state = {
            "student": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "teacher": self.large.ema.state_dict(),
            "generator": self.large.generator.get_state(),
            "large_retired": self.large_retired,
        }
        if not self.large_retired:
            large = self.large.state_dict()
            state["large"] = {k: v for k, v in large.items() if k not in ("teacher", "generator")}
        if self.tracker is not None:
            state["inconsistency"] = self.tracker.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("large_retired"):
            self.large.ema.load_state_dict(state["teacher"])
            self.retire_large_student()
        else:
            shared = {"teacher": state["teacher"], "generator": state["generator"]}
            self.large.load_state_dict({**state["large"], **shared})
        self.large.generator.set_state(state["generator"])
        if self.tracker is not None and "inconsistency" in state:
            self.tracker.load_state_dict(state["inconsistency"])


def _prefixed(name: str, logs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`loss/source` of the large student becomes `loss/large_source`."""
    out = {}
    for key, value in logs.items():
        group, _, rest = key.partition("/")
        out[f"{group}/{name}_{rest}" if group == "loss" else key] = value
    return out


def _with_totals(logs: dict[str, Any]) -> dict[str, Any]:
    losses = {k: v for k, v in logs.items() if k.startswith("loss/") and "total" not in k}
    student = [v for k, v in losses.items() if k.startswith("loss/student_")]
    logs["loss/total"] = sum(student) if student else sum(losses.values())  # the progress bar
    large = [v for k, v in losses.items() if k.startswith("loss/large_")]
    if large:
        logs["loss/large_total"] = sum(large)
    return logs


def _valid(target: Batch, like: torch.Tensor) -> torch.Tensor:
    valid = target.get("valid")
    return torch.ones_like(like, dtype=torch.float) if valid is None else valid.float()


@torch.no_grad()
def _agreement(logits: torch.Tensor, label: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Share of valid pixels where the student's argmax equals the teacher's label."""
    pred = resize_logits(logits.detach().float(), label.shape[-2:]).argmax(1)
    keep = valid > 0
    return ((pred == label) & keep).sum() / keep.sum().clamp(min=1)
