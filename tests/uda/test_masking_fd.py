import torch

from duda.uda.feature_distance import downscale_label_ratio, feature_distance, thing_mask
from duda.uda.masking import block_mask, mask_images


def test_block_mask_ratio_and_block_structure():
    g = torch.Generator().manual_seed(0)
    keep = block_mask(64, 128, 128, block=32, ratio=0.7, generator=g)
    assert keep.shape == (64, 1, 128, 128)
    assert abs(float(keep.mean()) - 0.3) < 0.04  # cells kept with probability 1 - 0.7
    blocks = keep.view(64, 1, 4, 32, 4, 32)
    # constant within every 32x32 block
    assert torch.equal(blocks.amax(dim=(3, 5)), blocks.amin(dim=(3, 5)))


def test_masked_pixels_become_the_mean_colour():
    img = torch.randn(1, 3, 4, 4)
    keep = torch.zeros(1, 1, 4, 4)
    keep[..., :2] = 1
    out = mask_images(img, keep)
    assert torch.equal(out[..., :2], img[..., :2]) and (out[..., 2:] == 0).all()


def test_downscale_label_ratio_by_hand():
    label = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 255], [3, 3, 4, 4], [3, 0, 4, 4]]])
    # blocks: all 1 -> 1; 3 of 4 = 2 (0.75) -> 2; 3 of 4 = 3 -> 3; all 4 -> 4
    assert downscale_label_ratio(label, 2, 0.75, 19).tolist() == [[[1, 2], [3, 4]]]
    # a stricter ratio drops the 3/4 blocks
    assert downscale_label_ratio(label, 2, 0.8, 19).tolist() == [[[1, 255], [255, 4]]]


def test_feature_distance_zero_identical_finite_on_empty_mask():
    f = torch.randn(2, 8, 4, 4, requires_grad=True)
    assert float(feature_distance(f, f.detach()).detach()) == 0.0
    empty = torch.zeros(2, 4, 4, dtype=torch.bool)
    d = feature_distance(f, torch.randn(2, 8, 4, 4), empty)
    assert float(d.detach()) == 0.0 and torch.isfinite(d)
    d.backward()
    assert torch.isfinite(f.grad).all()


def test_feature_distance_by_hand_on_masked_pixels():
    s = torch.zeros(1, 2, 1, 2)
    r = torch.zeros(1, 2, 1, 2)
    r[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # distance 5 at pixel 0, 0 at pixel 1
    mask = torch.tensor([[[True, False]]])
    assert float(feature_distance(s, r, mask)) == 5.0
    assert float(feature_distance(s, r)) == 2.5


def test_thing_mask_keeps_only_thing_blocks():
    label = torch.zeros(1, 64, 64, dtype=torch.long)  # road
    label[:, :32, :32] = 13  # car block
    mask = thing_mask(label, (2, 2))
    assert mask.tolist() == [[[True, False], [False, False]]]
