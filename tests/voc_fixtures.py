"""A two-image VOC2007-layout split shared by the VOC tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gsutils.data.voc import VOC_CLASSES, VOCObject, write_image_set, write_voc_image


def write_dog_and_cat_split(voc: Path, cat_box: tuple[int, int, int, int],
                            lone_cat_box: tuple[int, int, int, int]) -> tuple[int, int]:
    """Write split ``test`` under ``voc``: image 000001 (40 x 56) with a dog at (2, 3, 10, 30)
    and a difficult cat at ``cat_box``; image 000002 (48 x 36) with a cat at ``lone_cat_box``.

    Returns the class indices ``(dog, cat)``.
    """
    rng = np.random.default_rng(0)
    dog, cat = VOC_CLASSES.index("dog"), VOC_CLASSES.index("cat")
    write_voc_image(voc, "000001", rng.integers(0, 256, (40, 56, 3), dtype=np.uint8),
                    [VOCObject("dog", dog, (2, 3, 10, 30), False), VOCObject("cat", cat, cat_box, True)])
    write_voc_image(voc, "000002", rng.integers(0, 256, (48, 36, 3), dtype=np.uint8),
                    [VOCObject("cat", cat, lone_cat_box, False)])
    write_image_set(voc, "test", ["000001", "000002"])
    return dog, cat
