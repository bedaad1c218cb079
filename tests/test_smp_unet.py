"""smp U-Nets (vgg16 / mobilenet_v2 / resnet18 and their slim quick variants) built through build_unet."""

from __future__ import annotations

import pytest
import torch

from gsutils.models.smp_unet import FAMILY, FULL_STEM_BACKBONES, SLIM_BACKBONES, SMALL_BACKBONES, SMP_BACKBONES, SPECS, build_smp_unet
from gsutils.models.unet import BACKBONES, build_unet, load_checkpoint_into, save_unet



def test_every_smp_backbone_is_a_unet_backbone():
    assert (set(SMP_BACKBONES) | set(SLIM_BACKBONES) | set(SMALL_BACKBONES) | set(FULL_STEM_BACKBONES)
            == set(SPECS) == set(BACKBONES) - {"tiny", "small"})
    assert {FAMILY[b] for b in SLIM_BACKBONES} == {FAMILY[b] for b in SMP_BACKBONES} == {
        FAMILY[b] for b in SMALL_BACKBONES}


@pytest.mark.parametrize("backbone, side, multiple, low, high",
                         [(b, 32, 16, 50_000, 200_000) for b in SLIM_BACKBONES]  # compact 32 px stand-ins
                         + [(b, 64, 32, 1_000_000, 3_000_000) for b in SMALL_BACKBONES + FULL_STEM_BACKBONES])  # 64 px, ~ "small"
def test_reduced_variants_shapes_sizes_and_gradients(backbone, side, multiple, low, high):
    model = build_unet(backbone, seed=0).eval()
    assert model.size_multiple == multiple
    x = torch.rand(2, 1, side, side, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = model(x)
    assert y.shape == (2, 11, side, side) and torch.isfinite(y).all()
    y[:, 3].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # input gradients flow (saliency needs them)
    n = sum(p.numel() for p in model.parameters())
    assert low < n < high, n
    assert not any(getattr(m, "inplace", False) for m in model.modules())


@pytest.mark.parametrize("backbone, paths, absent", [
    ("vgg16", ["encoder.features.0", "encoder.features.28", "encoder.features.29", "decoder.blocks.4",
               "segmentation_head"], []),
    ("mobilenet_v2", ["encoder.features.0.0", "encoder.features.18"], []),
    ("resnet18", ["encoder.conv1", "encoder.layer4", "encoder.layer4.1.conv2"], []),
    ("slim_vgg16", ["encoder.features.0", "encoder.features.29", "decoder.blocks.3"],
     ["encoder.features.30", "decoder.blocks.4"]),
    ("slim_mobilenet_v2", ["encoder.features.13"], ["encoder.features.14"]),
    ("slim_resnet18", ["encoder.layer3"], ["encoder.layer4"]),
    ("small_vgg16", ["encoder.features.0", "encoder.features.29", "decoder.blocks.4"], ["encoder.features.31"]),
    ("small_mobilenet_v2", ["encoder.features.18"], []),
    ("small_resnet18", ["encoder.layer4"], []),
])
def test_torchvision_module_names(backbone, paths, absent):
    model = build_smp_unet(backbone)
    for p in paths:
        model.get_submodule(p)
    for p in absent:  # stages the encoder depth does not use are not built
        with pytest.raises(AttributeError):
            model.get_submodule(p)


def test_vgg16_first_conv_takes_one_channel_and_full_vgg_layout():
    model = build_unet("vgg16", seed=0)
    assert model.encoder.features[0].weight.shape == (64, 1, 3, 3)
    assert model.encoder.features[28].weight.shape == (512, 512, 3, 3)  # conv5_3
    assert model.size_multiple == 32


def test_seeded_build_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = (build_unet("slim_resnet18", seed=s) for s in (3, 3, 4))
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["encoder.conv1.weight"], sc["encoder.conv1.weight"])


def test_bad_input_names_the_shape():
    model = build_unet("slim_vgg16", seed=0)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*multiples of 16.*slim_vgg16"):
        model(torch.zeros(1, 1, 24, 24))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0]])
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_smp_unet("vgg19")


def test_checkpoint_round_trip_and_architecture_check(tmp_path):
    model = build_unet("slim_mobilenet_v2", seed=1).eval()
    path = save_unet(model, tmp_path / "m.pt")
    assert torch.load(path, weights_only=True)["arch"]["backbone"] == "slim_mobilenet_v2"
    again = build_unet("slim_mobilenet_v2", checkpoint=path).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    with pytest.raises(ValueError, match="slim_mobilenet_v2.*slim_resnet18"):
        build_unet("slim_resnet18", checkpoint=path)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="smp U-Net.*'slim_vgg16'"):
        load_checkpoint_into(build_unet("slim_vgg16"), tmp_path / "sd.pt")


def test_training_step_lowers_the_loss_on_a_fixed_batch():
    """A few AdamW steps on one batch fit it better: the smp network trains in our recipe's layout."""
    torch.manual_seed(0)
    model = build_unet("slim_resnet18", seed=0).train().to(memory_format=torch.channels_last)
    x = torch.rand(4, 1, 32, 32)
    y = (x[:, 0] > 0.5).long()  # two classes out of 11: a learnable pixel rule
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("backbone", ["small_resnet18_fs", "small_mobilenet_v2_fs"])
def test_full_resolution_stem_runs_a_convolution_at_the_input_resolution(backbone):
    """The ``_fs`` variants' first convolution keeps the 64 px resolution; the family's stride-2 stem follows."""
    model = build_unet(backbone, seed=0).eval()
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 1 and convs[0].stride == (1, 1) and convs[0].kernel_size == (3, 3)
    assert convs[1].stride == (2, 2)
    feats = model.encoder(torch.zeros(1, 1, 64, 64))
    assert [f.shape[-1] for f in feats] == [64, 32, 16, 8, 4, 2]
