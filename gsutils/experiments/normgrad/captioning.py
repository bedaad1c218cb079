"""NormGrad supplement F: train, evaluate and explain an image captioner.

* :func:`train_or_load_captioner`: the profile's captioner
  (:class:`gsutils.models.captioner.Captioner`) trained with teacher forcing
  (cross-entropy on the next word, plus the optional attribute loss; Adam,
  cosine decay to 1/20 of the learning rate) through the shared loop
  :func:`gsutils.experiments.common.training.fit`: seeded, checkpointed after every
  epoch, resumed after an interruption, cached in the result store under
  ``captioner/<key>.pt``. The encoder starts at random or, as neuraltalk2
  starts from an ImageNet classifier, from the profile's section-A ResNet50
  (:mod:`gsutils.experiments.normgrad.classifier_training`); when it is frozen
  (``train_encoder`` false) its pooled features are computed once and only the
  decoder is trained. Where training takes longer than a book build may
  spend, the captioner this code trained ships in
  ``checkpoints/<profile>/captioner-<key>/`` and is restored only when its
  config equals the run's and its checksum verifies (:func:`shipped_network`).
* :func:`evaluate_captioner`: greedy captions of the test images, BLEU-4,
  ROUGE-L, CIDEr (pycocoevalcap) and the object-mention F1 that gates the
  saliency claims, a :class:`~gsutils.experiments.normgrad.caption_results.CaptionEvaluation`
  (cached, ``captioner_eval/<key>.json``).
* :func:`gsutils.experiments.normgrad.caption_saliency.explain_captions`: selective
  NormGrad of the log-probability of each generated caption (or of one word of it) at the layers of
  :data:`gsutils.models.captioner.EXPLAINED_LAYERS`, their product
  combination with linear weights (:mod:`gsutils.saliency.combine`), and the
  sharpness of every map, an :class:`~gsutils.experiments.normgrad.caption_results.ExplainedCaptions`
  (cached, ``caption_maps/<key>.npz``).

From the command line (train, evaluate and explain:
:func:`gsutils.experiments.normgrad.caption_saliency.main`)::

    python -m gsutils captioning --profile quick [--retrain] [--export]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gsutils.data.captions import (
    DIGIT_CLASSES,
    CaptionSceneConfig,
    CaptionSet,
    Vocabulary,
    coco_caption_paths,
    read_caption_scenes,
    read_coco_captions,
    tokenize,
    write_caption_scenes,
)
from gsutils.experiments.common.shipped import ShippedNetwork
from gsutils.experiments.common.store import Store
from gsutils.experiments.common.training import TrainState, discard_checkpoint, fit, mix_seed
from gsutils.experiments.normgrad.caption_results import CaptionEvaluation
from gsutils.experiments.normgrad.classifier_training import classifier_config, train_or_load_classifier
from gsutils.io import config_key
from gsutils.metrics.captions import caption_scores, mention_f1
from gsutils.models.captioner import PAD, Captioner
from gsutils.profiles import Profile

KIND = "captioner"
#: bump when the training recipe changes
RECIPE_VERSION = 4
#: losses of the first training steps kept in the history (checked against shipped networks)
FIRST_STEPS = 8
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_profile(profile: Profile) -> None:
    if not isinstance(profile, Profile):
        raise TypeError(f"profile must be a gsutils.profiles.Profile, got {type(profile).__name__}")
    c = profile.captioning
    if c.source not in ("scenes", "coco"):
        raise ValueError(f"captioning.source must be 'scenes' or 'coco', got {c.source!r}")
    if c.encoder_init not in ("random", "classifier"):
        raise ValueError(f"captioning.encoder_init must be 'random' or 'classifier', got {c.encoder_init!r}")
    if c.encoder_init == "classifier":
        ng = profile.normgrad
        want = {"depths": (3, 4, 6, 3), "width": ng.width, "last_stride": ng.resnet_last_stride}
        have = {"depths": tuple(c.depths), "width": c.width, "last_stride": c.last_stride}
        if have != want:
            raise ValueError(f"encoder_init='classifier' starts from the section-A ResNet50, so the captioning "
                             f"settings {have} must be its {want}; change them or use encoder_init='random'")
    if not c.train_encoder and c.encoder_init == "random":
        raise ValueError("train_encoder=False with encoder_init='random' would caption from a random "
                         "encoder; train it or start from the classifier")


def scene_config(profile: Profile) -> CaptionSceneConfig:
    """The captioned-scene set a profile asks for."""
    c = profile.captioning
    return CaptionSceneConfig(
        image_size=int(c.image_size), n_train=int(c.n_train), n_test=int(c.n_test), seed=int(profile.seed),
        digits_source=profile.toy.digits_source, textures_source=profile.toy.textures_source,
        data_root=None if profile.data_root is None else str(profile.data_root))


def data_key(profile: Profile) -> str:
    """A key of the data the captioner is trained and tested on."""
    _check_profile(profile)
    c = profile.captioning
    if c.source == "scenes":
        return scene_config(profile).key()
    return config_key({"coco": str(profile.data_root), "size": c.image_size, "n": [c.n_train, c.n_test]})


def load_split(profile: Profile, split: str, *, progress: bool = False) -> CaptionSet:
    """The profile's ``"train"`` or ``"test"`` captioned images (``uint8``)."""
    _check_profile(profile)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    c = profile.captioning
    if c.source == "scenes":
        return read_caption_scenes(write_caption_scenes(scene_config(profile), (split,), progress=progress),
                                   split)
    if profile.data_root is None:
        raise FileNotFoundError("captioning.source='coco' reads MS COCO captions from <data_root>/coco; "
                                "pass data_root, or use a profile with source='scenes'")
    ann, images = coco_caption_paths(profile.data_root, "train" if split == "train" else "val")
    return read_coco_captions(ann, images, image_size=c.image_size,
                              limit=c.n_train if split == "train" else c.n_test)


def captioner_config(profile: Profile) -> dict[str, Any]:
    """Everything that determines a trained captioner (its cache key is a hash of this)."""
    _check_profile(profile)
    c = profile.captioning
    return {"recipe": RECIPE_VERSION, "data": data_key(profile), "source": c.source,
            "depths": list(c.depths), "width": float(c.width), "embed_dim": int(c.embed_dim),
            "hidden_dim": int(c.hidden_dim), "image_every_step": bool(c.image_every_step),
            "attribute_loss": float(c.attribute_loss),
            "captions_per_image": int(c.captions_per_image),
            "min_count": int(c.min_count), "max_len": int(c.max_len), "epochs": int(c.epochs),
            "batch_size": int(c.batch_size), "lr": float(c.lr), "seed": int(profile.seed),
            "last_stride": int(c.last_stride), "train_encoder": bool(c.train_encoder),
            "encoder_init": (config_key(classifier_config(profile, "resnet50"))
                             if c.encoder_init == "classifier" else "random")}


def normalize(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, S, S)`` uint8 RGB to the encoder's input (ImageNet statistics), float32."""
    x = images.float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=x.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=x.device)[:, None, None]
    return (x - mean) / std


def _training_pairs(data: CaptionSet, per_image: int) -> tuple[torch.Tensor, list[str]]:
    """``(image index, caption)`` pairs: the first ``per_image`` references of every image."""
    idx, caps = [], []
    for i, refs in enumerate(data.captions):
        for c in refs[:per_image]:
            idx.append(i)
            caps.append(c)
    return torch.tensor(idx), caps


def _lr_at(epoch: int, epochs: int, lr: float) -> float:
    """Cosine decay from ``lr`` (first epoch) to ``lr / 20`` (last epoch)."""
    if epochs <= 1:
        return lr
    return lr / 20 + (lr - lr / 20) * 0.5 * (1 + math.cos(math.pi * epoch / (epochs - 1)))


def _build(cfg: dict[str, Any], vocab_size: int) -> Captioner:
    return Captioner(vocab_size, depths=cfg["depths"], width=cfg["width"], embed_dim=cfg["embed_dim"],
                     hidden_dim=cfg["hidden_dim"], image_every_step=cfg["image_every_step"],
                     attribute_head=cfg["attribute_loss"] > 0, last_stride=cfg["last_stride"])


def _initial_encoder(profile: Profile, progress: bool) -> dict[str, torch.Tensor] | None:
    """The encoder's starting weights: the section-A ResNet50's (without ``fc``), or ``None`` (random)."""
    if profile.captioning.encoder_init != "classifier":
        return None
    classifier = train_or_load_classifier(profile, "resnet50", progress=progress)
    return {k: v.detach().cpu().clone() for k, v in classifier.state_dict().items() if not k.startswith("fc.")}


def checkpoint_path(profile: Profile) -> Path:
    """The per-epoch checkpoint of an unfinished training run."""
    return Path(profile.results_dir) / KIND / f"{config_key(captioner_config(profile))}.partial.pt"


def _fresh_fn(cfg: dict[str, Any], vocab_size: int, device: torch.device,
              encoder_state: dict[str, torch.Tensor] | None = None):
    def fresh() -> TrainState:
        torch.manual_seed(mix_seed(cfg["seed"], 1))
        model = _build(cfg, vocab_size)
        if encoder_state is not None:
            model.encoder.load_state_dict(encoder_state)
        model = model.to(device)
        if not cfg["train_encoder"]:
            model.encoder.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        return TrainState(model, torch.optim.Adam(params, lr=cfg["lr"]))

    return fresh


@torch.no_grad()
def encode_images(encoder: torch.nn.Module, images: torch.Tensor, device: torch.device,
                  batch_size: int = 64) -> torch.Tensor:
    """Pooled features ``(N, C)`` of ``(N, 3, S, S)`` uint8 images, the encoder in eval mode."""
    flags = [(m, m.training) for m in encoder.modules()]
    encoder.eval()
    try:
        return torch.cat([encoder(normalize(images[i:i + batch_size].to(device))).cpu()
                          for i in range(0, len(images), batch_size)])
    finally:
        for m, flag in flags:
            m.training = flag


def _epoch_fn(cfg: dict[str, Any], fetch: Callable[[torch.Tensor], torch.Tensor], pair_img: torch.Tensor,
              tokens: torch.Tensor, device: torch.device, max_steps: int | None = None):
    """``run_epoch`` for :func:`fit`: ``fetch(image indices)`` returns their ``(B, 3, S, S)`` uint8
    images, or, when the encoder is frozen (``train_encoder`` false), their ``(B, C)`` features."""
    n, bs = len(pair_img), cfg["batch_size"]

    def run_epoch(epoch: int, state: TrainState, step) -> dict[str, Any]:
        lr = _lr_at(epoch, cfg["epochs"], cfg["lr"])
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(cfg["seed"], 2, epoch)))
        total, words, correct, first = 0.0, 0, 0, []
        for k_step, i in enumerate(range(0, n, bs)):
            if max_steps is not None and k_step >= max_steps:
                break
            sel = order[i:i + bs]  # (B,)
            t = tokens[sel].to(device)  # (B, T)
            t = t[:, :int((t != PAD).sum(1).max())]  # drop all-padding columns
            if cfg["train_encoder"]:
                feats = state.model.encoder(normalize(fetch(pair_img[sel]).to(device)))  # (B, C)
            else:
                feats = fetch(pair_img[sel]).to(device)  # (B, C): the frozen encoder's features
            logits = state.model.decoder(feats, t)  # (B, T, V)
            mask = t != PAD
            loss = ce = F.cross_entropy(logits[mask], t[mask])
            if cfg["attribute_loss"] > 0:  # which words the caption holds (specials excluded)
                bag = torch.zeros(len(t), logits.shape[-1], device=device).scatter_(1, t, 1.0)  # (B, V)
                bag[:, :4] = 0
                attr = state.model.attributes(feats)[:, 4:]  # (B, V - 4)
                loss = loss + cfg["attribute_loss"] * F.binary_cross_entropy_with_logits(attr, bag[:, 4:])
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            k = int(mask.sum())
            total += float(ce.detach()) * k
            words += k
            correct += int((logits.detach().argmax(-1) == t)[mask].sum())
            step(float(loss.detach()))
            if epoch == 0 and len(first) < FIRST_STEPS:
                first.append(float(loss.detach()))
        out = {"lr": lr, "loss": total / words, "word_accuracy": correct / words}
        return {**out, "first_losses": first} if epoch == 0 else out

    return run_epoch


def _train(profile: Profile, progress: bool) -> dict[str, Any]:
    cfg = captioner_config(profile)
    device = torch.device(profile.device)
    data = load_split(profile, "train", progress=progress)
    vocab = Vocabulary.build((c for refs in data.captions for c in refs[:cfg["captions_per_image"]]),
                             cfg["min_count"])
    pair_img, pair_caps = _training_pairs(data, cfg["captions_per_image"])
    tokens = vocab.encode(pair_caps, cfg["max_len"])  # (P, T)
    devices = [device] if device.type == "cuda" else []
    ckpt = checkpoint_path(profile)
    fresh = _fresh_fn(cfg, len(vocab), device, _initial_encoder(profile, progress))
    if cfg["train_encoder"]:
        def fetch(idx: torch.Tensor) -> torch.Tensor:
            return data.images[idx]
    else:  # the frozen encoder's features, computed once
        feats = encode_images(fresh().model.encoder, data.images, device)  # (N, C)

        def fetch(idx: torch.Tensor) -> torch.Tensor:
            return feats[idx]
    with torch.random.fork_rng(devices=devices):
        state, history = fit(fresh=fresh,
                             run_epoch=_epoch_fn(cfg, fetch, pair_img, tokens, device),
                             epochs=cfg["epochs"], steps_per_epoch=math.ceil(len(pair_img) / cfg["batch_size"]),
                             checkpoint=ckpt, desc="train captioner", progress=progress)
    return {"state_dict": {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()},
            "vocab": list(vocab.words), "history": history}


def first_step_losses(profile: Profile, vocab: Vocabulary, steps: int = FIRST_STEPS) -> list[float]:
    """Re-run the first ``steps`` training steps of the profile's (scene) captioner from its initialisation.

    Only the scenes those steps read are rendered (a scene depends on its index
    alone); ``vocab`` is the trained captioner's. Compared with the
    ``first_losses`` of a shipped network's history by the tests.
    """
    from gsutils.data.captions import caption_scene, scene_rng
    from gsutils.data.mnist import load_digits
    from gsutils.data.textures import texture_bank

    cfg = captioner_config(profile)
    if cfg["source"] != "scenes" or cfg["captions_per_image"] != 1:
        raise ValueError("first_step_losses re-renders captioned scenes with one caption per image")
    sc = scene_config(profile)
    digits, labels = load_digits(sc.digits_source, "train", sc.data_root)
    textures = texture_bank(sc.textures_source, sc.data_root).textures
    n = sc.n_train
    order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(cfg["seed"], 2, 0)))
    needed = order[:steps * cfg["batch_size"]].tolist()
    images: dict[int, torch.Tensor] = {}
    caps = [""] * n
    for i in needed:
        image, _, _, captions = caption_scene(scene_rng(sc, "train", i), digits, labels, textures, sc.image_size)
        images[i] = torch.from_numpy(image).permute(2, 0, 1)  # (3, S, S)
        caps[i] = captions[0]
    tokens = vocab.encode([c or "a" for c in caps], cfg["max_len"])  # (N, T); unread rows are placeholders
    device = torch.device("cpu")
    state = _fresh_fn(cfg, len(vocab), device, _initial_encoder(profile, False))()
    if not cfg["train_encoder"]:
        images = {i: encode_images(state.model.encoder, x[None], device)[0] for i, x in images.items()}
    losses: list[float] = []
    run = _epoch_fn(cfg, lambda idx: torch.stack([images[int(j)] for j in idx]), torch.arange(n), tokens,
                    device, max_steps=steps)
    run(0, state, losses.append)
    return losses


def shipped_network(profile: Profile) -> ShippedNetwork:
    """The profile's shipped captioner, ``checkpoints/<profile>/captioner-<key>/``: restored into the
    result store by ``.restore(profile.results_dir)`` (only for an equal config and a verified
    checksum, else ignored with a warning and trained), exported from it by
    ``.export(profile.results_dir)`` (:class:`gsutils.experiments.common.shipped.ShippedNetwork`)."""
    return ShippedNetwork.of(KIND, profile, captioner_config(profile))


def train_or_load_captioner(profile: Profile, *, progress: bool = True,
                            shipped: bool = True) -> tuple[Captioner, Vocabulary, list]:
    """The profile's trained captioner, its vocabulary and its per-epoch training history.

    Loaded from the result store; else restored from the shipped checkpoint
    when one matches (``shipped=True``); else trained (resuming from the last
    epoch checkpoint after an interruption) and stored. The model is in eval
    mode on ``profile.device``.
    """
    cfg = captioner_config(profile)
    store = Store(profile.results_dir)
    if shipped and not store.exists(KIND, cfg, "pt"):
        shipped_network(profile).restore(profile.results_dir)
    result = store.get_or_compute(KIND, cfg, lambda: _train(profile, progress), fmt="pt")
    discard_checkpoint(checkpoint_path(profile))
    vocab = Vocabulary(result["vocab"])
    model = _build(cfg, len(vocab))
    model.load_state_dict(result["state_dict"])
    return model.to(torch.device(profile.device)).eval(), vocab, list(result["history"])


@torch.no_grad()
def generate(model: Captioner, vocab: Vocabulary, images: torch.Tensor, max_len: int,
             batch_size: int = 64) -> list[str]:
    """Greedy captions of ``(N, 3, S, S)`` uint8 images."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        ids = model.generate(normalize(images[i:i + batch_size].to(device)), max_len)  # (B, L)
        out.extend(vocab.decode(row) for row in ids.cpu())
    return out


def evaluate_captioner(profile: Profile, *, progress: bool = False) -> CaptionEvaluation:
    """Test-set caption quality and the gate (cached, in :meth:`CaptionEvaluation.to_json`'s form).

    Returns the scores (BLEU-4, ROUGE-L, CIDEr), the digit-word mentions
    (``None`` without object annotations), the gate, and the generated and
    reference captions of every test image.
    """
    cfg = captioner_config(profile)

    def compute() -> dict[str, Any]:
        model, vocab, _ = train_or_load_captioner(profile, progress=progress)
        test = load_split(profile, "test")
        gen = generate(model, vocab, test.images, cfg["max_len"])
        scores = caption_scores(dict(enumerate(test.captions)), dict(enumerate(gen)))
        mentions = None
        if test.objects is not None:
            mentions = mention_f1([tokenize(c) for c in gen], [[o.name for o in objs] for objs in test.objects],
                                  DIGIT_CLASSES)
        thr = float(profile.captioning.gate_mention_f1)
        passed = None if mentions is None else bool(mentions["f1"] >= thr)
        return {"scores": scores, "mentions": mentions, "gate": {"threshold": thr, "passed": passed},
                "captions": gen, "references": [list(r) for r in test.captions], "n": len(test)}

    return CaptionEvaluation.from_json(
        Store(profile.results_dir).get_or_compute("captioner_eval", cfg, compute, fmt="json"))
