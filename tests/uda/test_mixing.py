import math

import torch

from duda.uda.mixing import StrongAugment, blur_kernel_size, class_mix_masks, one_mix


def test_each_sample_pastes_exactly_half_of_its_own_classes():
    g = torch.Generator().manual_seed(0)
    label = torch.full((2, 8, 8), 255)
    label[0, :2], label[0, 2:4], label[0, 4:6] = 0, 3, 5  # 3 classes -> 2 pasted
    label[1, :4], label[1, 4:] = 7, 9  # 2 classes -> 1 pasted
    for _ in range(20):
        masks = class_mix_masks(label, g)
        assert masks.shape == (2, 1, 8, 8)
        for i, want in enumerate((2, 1)):
            pasted = torch.unique(label[i][masks[i, 0].bool()])
            assert len(pasted) == want and 255 not in pasted.tolist()
            # a class is pasted entirely or not at all
            for c in torch.unique(label[i]).tolist():
                region = masks[i, 0][label[i] == c]
                assert region.min() == region.max()
            assert masks[i, 0][label[i] == 255].sum() == 0


def test_reference_quirk_draws_from_the_batch_class_set():
    g = torch.Generator().manual_seed(1)
    label = torch.zeros(2, 4, 4, dtype=torch.long)
    label[1] = 1
    counts = []
    for _ in range(200):
        masks = class_mix_masks(label, g, batch_level=True)
        counts.append(int(masks[0].sum() > 0))
    # the batch has 2 classes, one is chosen: sample 0 gets its class half of the time only
    assert 0.35 < sum(counts) / len(counts) < 0.65


def test_mixed_images_labels_and_weights_are_aligned():
    g = torch.Generator().manual_seed(0)
    src_label = torch.tensor([[[0, 0, 1, 1]] * 4])
    masks = class_mix_masks(src_label, g)
    src_img = torch.full((1, 3, 4, 4), 1.0)
    tgt_img = torch.full((1, 3, 4, 4), -1.0)
    pl = torch.full((1, 4, 4), 5)
    weight = torch.full((1, 4, 4), 0.3)
    img = one_mix(masks, src_img, tgt_img)
    lab = one_mix(masks, src_label, pl)
    w = one_mix(masks, torch.ones_like(weight), weight)
    pasted = masks[0, 0].bool()
    assert lab.dtype == torch.long
    assert torch.equal(img[0, :, pasted], torch.ones(3, int(pasted.sum())))
    assert torch.equal(img[0, :, ~pasted], -torch.ones(3, int((~pasted).sum())))
    assert torch.equal(lab[0][pasted], src_label[0][pasted])
    assert (lab[0][~pasted] == 5).all()
    assert (w[0][pasted] == 1).all() and torch.allclose(w[0][~pasted], torch.tensor(0.3))


def test_blur_kernel_sizes_of_the_reference():
    assert blur_kernel_size(512) == 51
    assert blur_kernel_size(1024) == 103
    assert blur_kernel_size(128) == 13


def test_strong_augment_draw_rates_and_identity_when_off():
    g = torch.Generator().manual_seed(0)
    aug = StrongAugment(jitter_p=0.8, blur_p=0.5)
    draws = [aug.draw(g) for _ in range(2000)]
    assert math.isclose(sum(j for j, _ in draws) / 2000, 0.8, abs_tol=0.04)
    assert math.isclose(sum(b for _, b in draws) / 2000, 0.5, abs_tol=0.04)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(aug(x, False, False, g), x)
    y = aug(x, True, True, g)
    assert y.shape == x.shape and not torch.allclose(y, x)
    assert torch.isfinite(y).all()
