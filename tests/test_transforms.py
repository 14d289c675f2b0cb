"""Joint transforms keep image and mask aligned; the Dataset yields what stages expect."""

import torch
from torchvision import tv_tensors

from wsss.data.dataset import SegmentationDataset
from wsss.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    cam_train_transforms,
    train_transforms,
)
from wsss.kinds.dataset import load_index


def _pair(h=40, w=60):
    """An image whose red channel encodes the mask: 4 vertical bands of classes 0..3."""
    mask = torch.zeros(h, w, dtype=torch.int64)
    for k in range(4):
        mask[:, k * w // 4 : (k + 1) * w // 4] = k
    image = torch.zeros(3, h, w, dtype=torch.uint8)
    image[0] = (mask * 60).to(torch.uint8)
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def _decode_red(image: torch.Tensor) -> torch.Tensor:
    red = image[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    return torch.round(red * 255 / 60).to(torch.int64)


def test_random_resized_crop_and_flip_move_mask_with_image():
    torch.manual_seed(0)
    for _ in range(10):
        image, mask = train_transforms(32, scale=(0.3, 1.0), hflip=0.5)(*_pair())
        assert image.shape == (3, 32, 32) and mask.shape == (32, 32)
        assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64
        assert set(mask.unique().tolist()) <= {0, 1, 2, 3}  # nearest: no blended labels
        agree = (_decode_red(image) == mask).float().mean()
        assert agree > 0.9  # only the bilinear seams between bands may differ


def test_padded_crop_and_flip_are_joint():
    image, mask = _pair()
    # long side 60 = the image's own: no rescale, then flip and a padded 80 x 80 crop
    out_image, out_mask = cam_train_transforms((60, 60), 80, hflip=1.0)(image, mask)
    assert out_image.shape == (3, 80, 80)
    assert (out_mask == 255).sum() == 80 * 80 - 40 * 60  # padding is ignore in the mask
    inside = out_mask != 255
    assert (_decode_red(out_image)[inside] == out_mask[inside]).all()
    columns = inside.any(dim=0).nonzero().flatten()
    first, last = out_mask[:, columns[0]], out_mask[:, columns[-1]]
    assert (first[first != 255] == 3).all() and (last[last != 255] == 0).all()  # flipped


def test_dataset_items(dataset_artifact):
    index = load_index(dataset_artifact)
    ds = SegmentationDataset(index, "train", cam_train_transforms((40, 56), 32, 0.5))
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["labels"].shape == (20,) and item["labels"].sum() >= 1
    present = {int(v) - 1 for v in item["mask"].unique() if 0 < v < 255}
    assert present <= set(item["labels"].nonzero().flatten().tolist())
