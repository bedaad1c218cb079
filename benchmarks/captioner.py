"""Captioner training throughput and explanation time per caption (NormGrad supplement F).

With the profile's captioner (``--profile quick``: the section-A ResNet50
encoder, ResNet101's module tree with 3, 4, 6, 3 blocks at 1/8 widths, on
112 px images), on random images and captions of the profile's length:

- ``captioner_train_images_per_s``: images per second of a training step
  that fine-tunes the encoder with the decoder (forward, caption loss,
  backward, Adam step), over ``--steps`` batches;
- ``captioner_train_vs_encoder_only``: that step's time over the time of a
  step that trains the encoder alone on a linear head (the baseline, same run);
- ``captioner_decoder_step_images_per_s``: the profile's recipe when the
  encoder is frozen: the decoder's step on precomputed features;
- ``captioner_encode_images_per_s``: computing those features (once per run);
- ``caption_explanation_s``: seconds to explain one caption (selective
  NormGrad at the three layers and their product combination,
  :func:`gsutils.experiments.normgrad.caption_saliency.caption_maps`);
- ``caption_explanation_vs_gradient``: that time over one plain gradient of
  the caption's log-probability with respect to the image (the baseline).

Prints ``name: value`` lines. Usage: ``python benchmarks/captioner.py [--profile quick] [--steps 5]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from gsutils.experiments.normgrad import captioning as cap
from gsutils.experiments.normgrad.caption_saliency import caption_maps
from gsutils.models.captioner import END, CaptionLogProb
from gsutils.profiles import get_profile


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "gpu", "paper"))
    parser.add_argument("--steps", type=int, default=5, help="training batches timed")
    parser.add_argument("--repeats", type=int, default=5, help="timed explanations (median)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    prof = get_profile(args.profile, device="cpu")
    cfg = cap.captioner_config(prof)
    c = prof.captioning
    vocab_size, s, bs, length = 24, c.image_size, c.batch_size, 12
    g = torch.Generator().manual_seed(0)
    n = bs * args.steps
    images = torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, generator=g)
    tokens = torch.randint(4, vocab_size, (n, length), generator=g)
    tokens[:, -1] = END
    device = torch.device("cpu")

    tuned = {**cfg, "train_encoder": True}
    state = cap._fresh_fn(tuned, vocab_size, device)()
    run = cap._epoch_fn(tuned, lambda idx: images[idx], torch.arange(n), tokens, device)
    t0 = time.perf_counter()
    run(1, state, lambda loss: None)
    t_train = (time.perf_counter() - t0) / args.steps

    frozen = {**cfg, "train_encoder": False}
    fstate = cap._fresh_fn(frozen, vocab_size, device)()
    t0 = time.perf_counter()
    feats = cap.encode_images(fstate.model.encoder, images, device)  # (n, C)
    t_encode = (time.perf_counter() - t0) / n
    run = cap._epoch_fn(frozen, lambda idx: feats[idx], torch.arange(n), tokens, device)
    t0 = time.perf_counter()
    run(1, fstate, lambda loss: None)
    t_decoder = (time.perf_counter() - t0) / args.steps

    enc = cap._fresh_fn(cfg, vocab_size, device)()
    head = torch.nn.Linear(enc.model.encoder.out_features, 10)
    opt = torch.optim.Adam(list(enc.model.encoder.parameters()) + list(head.parameters()))
    labels = torch.randint(0, 10, (n,), generator=g)

    def encoder_step(i: int) -> None:
        x = cap.normalize(images[i * bs:(i + 1) * bs])
        loss = F.cross_entropy(head(enc.model.encoder(x)), labels[i * bs:(i + 1) * bs])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for i in range(args.steps):
        encoder_step(i)
    t_enc = (time.perf_counter() - t0) / args.steps

    model = state.model.eval()
    x = cap.normalize(images[:1])
    t1 = tokens[:1]

    def explain() -> None:
        caption_maps(model, x, t1)

    def gradient() -> None:
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(CaptionLogProb(model, t1)(xi).sum(), xi)

    t_explain = _median_time(explain, args.repeats)
    t_grad = _median_time(gradient, args.repeats)
    print(f"captioner_train_images_per_s: {bs / t_train:.1f}")
    print(f"captioner_train_vs_encoder_only: {t_train / t_enc:.2f}")
    print(f"captioner_decoder_step_images_per_s: {bs / t_decoder:.1f}")
    print(f"captioner_encode_images_per_s: {1 / t_encode:.1f}")
    print(f"caption_explanation_s: {t_explain:.4f}")
    print(f"caption_explanation_vs_gradient: {t_explain / t_grad:.2f}")


if __name__ == "__main__":
    main()
