"""U-Net construction, shapes, module names, checkpoints and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gsutils.models.unet import BACKBONES, UNet, build_unet, save_unet

SMALL = ("tiny", "mobilenet_v2", "resnet18")


@pytest.mark.parametrize("backbone", BACKBONES)
def test_output_shape_and_finite(backbone):
    model = build_unet(backbone, seed=0).eval()
    size = 2 * model.size_multiple  # 16 (tiny), 32 (vgg16) or 64
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 11, size, size)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(
    "backbone, paths",
    [
        ("tiny", ["encoder.features.0", "encoder.features.19", "decoder.up1", "decoder.up2.conv2", "head"]),
        # smp U-Nets (gsutils.models.smp_unet; tests/test_smp_unet.py covers them further)
        ("vgg16", ["encoder.features.0", "encoder.features.28", "encoder.features.29", "decoder.blocks.4",
                   "segmentation_head"]),
        ("mobilenet_v2", ["encoder.features.0.0", "encoder.features.18", "decoder.blocks.4", "segmentation_head"]),
        ("resnet18", ["encoder.conv1", "encoder.layer4", "encoder.layer4.1.conv2", "decoder.blocks.4",
                      "segmentation_head"]),
    ],
)
def test_stable_module_names(backbone, paths):
    model = build_unet(backbone, seed=0)
    for p in paths:
        model.get_submodule(p)  # raises AttributeError if absent
    # nothing beyond the documented decoder depth
    with pytest.raises(AttributeError):
        if backbone == "tiny":
            model.get_submodule(f"decoder.up{model.decoder.depth + 1}")
        else:
            model.get_submodule(f"decoder.blocks.{len(model.decoder.blocks)}")


@pytest.mark.parametrize("backbone", ["tiny"])  # the hand-written decoder; smp's is smp's own
def test_skip_at_every_resolution(backbone):
    """The decoder blocks end at 1/2^(K-1) ... 1/1 of the input and each gets a skip."""
    model = build_unet(backbone, seed=0).eval()
    sizes = {}
    hooks = [
        model.get_submodule(f"decoder.up{k}").register_forward_hook(
            lambda m, i, o, k=k: sizes.__setitem__(k, (i[1].shape[-1], o.shape[-1]))
        )
        for k in range(1, model.decoder.depth + 1)
    ]
    with torch.no_grad():
        model(torch.rand(1, 1, 64, 64))
    for h in hooks:
        h.remove()
    depth = model.decoder.depth
    assert sizes == {k: (64 >> (depth - k), 64 >> (depth - k)) for k in range(1, depth + 1)}
    assert model.size_multiple == 2**depth


def test_no_inplace_activations():
    for backbone in SMALL:
        model = build_unet(backbone, seed=0)
        assert not any(getattr(m, "inplace", False) for m in model.modules()), backbone


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = build_unet("tiny", seed=3)
    b = build_unet("tiny", seed=3)
    c = build_unet("tiny", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["encoder.features.0.weight"], sc["encoder.features.0.weight"])


def test_unknown_backbone_lists_valid_ones():
    with pytest.raises(ValueError, match="vgg16.*mobilenet_v2.*resnet18.*'vgg19'"):
        build_unet("vgg19")


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"in_channels": -1}, {"num_classes": 2.5}])
def test_bad_sizes(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        build_unet("tiny", **kwargs)


@pytest.mark.parametrize(
    "shape", [(1, 3, 64, 64), (1, 64, 64), (1, 1, 62, 64), (1, 1, 64, 34), (4, 1, 0, 0)]
)
def test_bad_input_shape(shape):
    model = build_unet("tiny", seed=0)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*multiples of 8"):
        model(torch.zeros(shape))


def test_input_must_be_tensor():
    with pytest.raises(TypeError, match="torch.Tensor"):
        build_unet("tiny", seed=0)([[0.0]])


def test_in_channels_and_classes():
    model = build_unet("resnet18", num_classes=3, in_channels=3, seed=0).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_checkpoint_round_trip(tmp_path):
    model = build_unet("tiny", seed=1).eval()
    path = save_unet(model, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)  # loadable without pickle
    assert raw["arch"] == {"backbone": "tiny", "num_classes": 11, "in_channels": 1}
    again = build_unet("tiny", checkpoint=path).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    # a plain state dict of the same U-Net loads too
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    sd = build_unet("tiny", checkpoint=tmp_path / "sd.pt").eval()
    with torch.no_grad():
        assert torch.equal(model(x), sd(x))


def test_checkpoint_of_other_architecture_names_both(tmp_path):
    path = save_unet(build_unet("tiny", seed=0), tmp_path / "tiny.pt")
    with pytest.raises(ValueError, match="tiny.*resnet18"):
        build_unet("resnet18", checkpoint=path)
    with pytest.raises(ValueError, match="num_classes.*5"):
        build_unet("tiny", num_classes=5, checkpoint=path)
    torch.save(build_unet("tiny", seed=0).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="looks like tiny.*'mobilenet_v2'"):
        build_unet("mobilenet_v2", checkpoint=tmp_path / "sd.pt")


def test_missing_or_unreadable_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_unet("tiny", checkpoint=tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pt"):
        build_unet("tiny", checkpoint=tmp_path / "junk.pt")


def test_torchvision_encoder_weights_load(tmp_path):
    """An ImageNet-style torchvision state dict fills the encoder (RGB filters summed to gray)."""
    from torchvision.models import resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tv = resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    model = build_unet("resnet18", checkpoint=tmp_path / "resnet18.pth", seed=0)
    assert torch.equal(model.encoder.layer3[0].conv1.weight, tv.layer3[0].conv1.weight)
    assert torch.allclose(model.encoder.conv1.weight, tv.conv1.weight.sum(1, keepdim=True))
    with pytest.raises(ValueError, match="resnet18.*'vgg16'"):
        build_unet("vgg16", checkpoint=tmp_path / "resnet18.pth")


def test_is_module():
    assert isinstance(build_unet("tiny"), (UNet, nn.Module))
