"""Which U-Net, resolution and precision pass the S1 gate on a CPU, per step and per CPU second.

The Grid Saliency S1.3-S1.6 claims are judged only when the unbiased network N
reaches a mean digit IoU of at least 0.75 on the quick profile's unbiased test
set (the gate, fixed beforehand). This study trains N with the quick recipe
(AdamW, weight decay 1e-4, one learning-rate cycle peaking at 3e-3 with 15 %
warm-up, batch 32, a fresh draw of 4,000 training images every epoch, plain
cross entropy) for each trial and measures the mean digit IoU on the first 300
unbiased test images at the trial's resolution every ``--eval-every`` steps,
with the CPU seconds spent training so far (``time.process_time``, one thread)
and the wall seconds:

=============  =====================================  ==========  =========  =====
trial          U-Net (widths per resolution)          data        precision  cycle
=============  =====================================  ==========  =========  =====
tiny32         16-32-64-64 (the former quick network)  32 px [1]   float32    3,000
small64        16-32-64-128-128 (5 levels)             64 px       float32    3,000
small64_bf16   16-32-64-128-128                        64 px       bf16 [2]   3,000
small64_short  16-32-64-128-128                        64 px       float32    1,500
narrow64       8-16-32-64-64 (5 levels, 1/4 params)    64 px       float32    3,000
deep4_64       16-32-64-128 (4 levels)                 64 px       float32    3,000
=============  =====================================  ==========  =========  =====

[1] rendered at 64 px and area-downsampled, as the quick profile did before.
[2] the forward pass under ``torch.autocast("cpu", torch.bfloat16)``: the one trial that
    compares precisions (against ``small64``). It is run only where the CPU computes bfloat16
    natively (AMX, AVX-512 BF16); on an AVX2-only CPU oneDNN emulates it and a step of these
    U-Nets ran about 20x slower than float32, so the trial is skipped there with a line saying
    so (``--emulated-bf16`` runs it anyway). ``--speed`` times a few steps of ``small64`` at both
    precisions in the same run and prints the ratio, on any CPU.

The S1.5 families (``gsutils.models.smp_unet``'s small 64 px variants, bf16,
the same recipe) with a cycle twice as long: ``resnet18_6k`` and
``mobilenet_v2_6k`` (at 3,000 steps, ResNet18's N reached 0.648 and VGG16's
0.758 on the 500 test images of the S1.5 page), ``vgg16_3k`` for reference.
While a trial runs, its curve so far is kept in ``<trial>.partial.json``.

Every trial starts from the quick N network's initialisation seed. Each finished
trial is written to ``benchmarks/results/s1_network_study/<trial>.json`` (kept
in the repository, so a study spread over several sessions ships each finished
trial) and skipped when the script is run again (``--force`` re-runs), so an
interrupted study resumes; the table at the end is printed from all finished trials.

Usage: ``python benchmarks/s1_network_study.py [--trials small64_bf16 tiny32 ...]
[--eval-every 500] [--steps-scale 1.0] [--force]``. A trial of 3,000 steps costs
about 6 (tiny32) to 28 (small64, float32) CPU minutes on one thread of this
project's machine; ``--steps-scale 0.01`` runs every trial for a few steps (a check).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402


@dataclass(frozen=True)
class Trial:
    widths: tuple[int, ...]
    resolution: int
    render_resolution: int | None
    bf16: bool
    steps: int
    #: ``"small"`` (the hand-written U-Net at ``widths``) or an smp backbone of ``build_unet``
    backbone: str = "small"


TRIALS: dict[str, Trial] = {
    "tiny32": Trial((16, 32, 64, 64), 32, 64, False, 3000),
    "small64": Trial((16, 32, 64, 128, 128), 64, None, False, 3000),
    "small64_bf16": Trial((16, 32, 64, 128, 128), 64, None, True, 3000),
    "small64_short": Trial((16, 32, 64, 128, 128), 64, None, False, 1500),
    "narrow64": Trial((8, 16, 32, 64, 64), 64, None, False, 3000),
    "deep4_64": Trial((16, 32, 64, 128), 64, None, False, 3000),
    "vgg16_3k": Trial((), 64, None, True, 3000, "small_vgg16"),
    "resnet18_6k": Trial((), 64, None, True, 6000, "small_resnet18"),
    "mobilenet_v2_6k": Trial((), 64, None, True, 6000, "small_mobilenet_v2"),
    # a 3x3 convolution at full resolution before the families' stride-2 stems (float32: measured on
    # a CPU without native bfloat16, where autocast ran a step 20x slower)
    "resnet18_fs_3k": Trial((), 64, None, False, 3000, "small_resnet18_fs"),
    "mobilenet_v2_fs_3k": Trial((), 64, None, False, 3000, "small_mobilenet_v2_fs"),
    "mobilenet_v2_fs_6k": Trial((), 64, None, False, 6000, "small_mobilenet_v2_fs"),
}
GATE = 0.75
N_TEST = 300


def digit_miou(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean IoU over the ten digit classes of ``net``'s float32 predictions (the library's metric)."""
    from gsutils.experiments.grid.segmentation import predict
    from gsutils.metrics.segmentation import ConfusionMeter, mean_iou

    net.eval()
    meter = ConfusionMeter(11)
    meter.update(predict(net, x), y)
    net.train()
    return mean_iou(meter.iou()[:10])


def run_trial(name: str, trial: Trial, steps: int, eval_every: int, partial: Path | None = None) -> dict:
    import dataclasses

    from gsutils.data.toy import make_toy_dataset
    from gsutils.experiments.common.training import mix_seed
    from gsutils.experiments.grid import segmentation as seg
    from gsutils.models.unet import UNet, build_unet
    from gsutils.profiles import get_profile

    prof = get_profile("quick", device="cpu")
    prof = dataclasses.replace(prof, toy=dataclasses.replace(prof.toy, resolution=trial.resolution,
                                                             render_resolution=trial.render_resolution))
    run = seg.grid_runs(prof)[0]  # N
    toy = seg.run_toy_config(prof, run.bias, run.seed)
    test = seg.unbiased_test_set(prof)
    xt, yt = torch.from_numpy(test.images[:N_TEST]).float(), torch.from_numpy(test.labels[:N_TEST]).long()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(mix_seed(run.seed, 1))
        net = (UNet("small", 11, 1, widths=trial.widths) if trial.backbone == "small"
               else build_unet(trial.backbone, num_classes=11, in_channels=1))
    net = net.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, pct_start=0.15, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    curve, step, epoch, cpu, wall = [], 0, 0, 0.0, 0.0
    while step < steps:
        d = make_toy_dataset(toy, "train", prof.toy.n_train, epoch=epoch)
        x, y = torch.from_numpy(d.images).float(), torch.from_numpy(d.labels).long()
        epoch += 1
        for i in range(0, len(x) - 31, 32):
            c0, w0 = time.process_time(), time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=trial.bf16):
                logits = net(x[i:i + 32].contiguous(memory_format=torch.channels_last))
            loss = loss_fn(logits.float(), y[i:i + 32])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            step += 1
            if step % eval_every == 0 or step == steps:
                m = digit_miou(net, xt, yt)
                curve.append({"step": step, "digit_miou": m, "cpu_s": cpu, "wall_s": wall})
                print(f"{name} step {step}: digit mIoU {m:.3f}, {cpu:.0f} CPU s", flush=True)
                if partial is not None:
                    partial.write_text(json.dumps({"trial": name, "steps": steps, "curve": curve}, indent=1))
            if step == steps:
                break
    params = sum(p.numel() for p in net.parameters())
    return {"trial": name, **dataclasses.asdict(trial), "steps": steps, "params": params, "curve": curve,
            "threads": torch.get_num_threads(), "cpu": _cpu_model()}


def precision_speed(steps: int = 6) -> dict:
    """Seconds per training step of ``small64`` (batch 32, 64 px, one thread) at float32 and under
    bfloat16 autocast, alternating, in the same run; the first step of each is left out."""
    from gsutils.models.unet import UNet

    torch.manual_seed(0)
    net = UNet("small", 11, 1, widths=TRIALS["small64"].widths).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.rand(32, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 11, (32, 64, 64))
    times: dict[str, list[float]] = {"float32": [], "bf16": []}
    for i in range(steps + 1):
        for name in times:
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                logits = net(x)
            loss = nn.functional.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times[name].append(time.perf_counter() - t0)
    f32, bf = (sorted(times[k])[len(times[k]) // 2] for k in ("float32", "bf16"))
    return {"cpu": _cpu_model(), "native_bf16": _native_bf16(), "float32_s": f32, "bf16_s": bf,
            "bf16_over_float32": bf / f32}


def _native_bf16() -> bool:
    from gsutils.models.precision import native_bf16

    return native_bf16("cpu")


def _cpu_model() -> str:
    from gsutils.experiments.common.shipped import machine

    return machine()["cpu"]


def table(rows: list[dict]) -> str:
    """A markdown table: per trial, the digit mIoU at each evaluation, the first gate pass and the CPU."""
    out = ["| trial | params | data | precision | cycle | digit mIoU at steps (CPU min) | first >= 0.75 | CPU |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pts = ", ".join(f"{c['step']:,}: {c['digit_miou']:.2f} ({c['cpu_s'] / 60:.0f})" for c in r["curve"])
        first = next((c for c in r["curve"] if c["digit_miou"] >= GATE), None)
        gate = "never" if first is None else f"step {first['step']:,}, {first['cpu_s'] / 60:.0f} CPU min"
        data = f"{r['resolution']} px" + (f" (from {r['render_resolution']})" if r["render_resolution"] else "")
        cpu = f"{r.get('cpu', '?')}, {r.get('threads', 1)} thread(s)"
        out.append(f"| {r['trial']} ({r.get('backbone', 'small')}) | {r['params'] / 1e6:.2f}M | {data} "
                   f"| {'bf16' if r['bf16'] else 'float32'} | {r['steps']:,} | {pts} | {gate} | {cpu} |")
    return "\n".join(out)


def finished_rows(out: Path) -> list[dict]:
    """The finished trials in ``out``, in :data:`TRIALS` order."""
    return [json.loads((out / f"{n}.json").read_text()) for n in TRIALS if (out / f"{n}.json").is_file()]


#: the study's folder in the repository (its trials and ``table.md``, which the appendix includes)
STUDY_DIR = Path(__file__).resolve().parent / "results" / "s1_network_study"


def main(argv: list[str] | None = None) -> int:
    from gsutils.paths import results_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", nargs="+", default=list(TRIALS), choices=list(TRIALS))
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--steps-scale", type=float, default=1.0,
                    help="multiply every trial's cycle (0.01: a quick check of the script)")
    ap.add_argument("--force", action="store_true", help="re-run finished trials")
    ap.add_argument("--out", default=None, help="folder of the trials' JSON (default benchmarks/results/s1_network_study)")
    ap.add_argument("--emulated-bf16", action="store_true",
                    help="run the bfloat16 trials on a CPU without native bfloat16 too (about 20x slower)")
    ap.add_argument("--table-only", action="store_true",
                    help="run no trial: print the table of the finished trials (and rewrite table.md)")
    ap.add_argument("--speed", action="store_true",
                    help="only time small64's steps at float32 and bfloat16 on this CPU and print the ratio")
    a = ap.parse_args(argv)
    if a.eval_every < 1 or a.steps_scale <= 0:
        ap.error("--eval-every and --steps-scale must be positive")
    torch.set_num_threads(1)
    if a.speed:
        r = precision_speed()
        print(f"{r['cpu']} (native bfloat16: {r['native_bf16']}): small64 step {r['float32_s']:.3f} s at float32, "
              f"{r['bf16_s']:.3f} s under bfloat16 autocast: bf16 / float32 = {r['bf16_over_float32']:.2f}")
        return 0
    if a.out:
        out = Path(a.out)
    elif a.steps_scale == 1.0:  # the study itself: its trials are kept with the code
        out = STUDY_DIR
    else:  # a shortened check never mixes with the study's trials
        out = results_root() / "benchmarks" / "s1_network_study_check"
    out.mkdir(parents=True, exist_ok=True)
    for name in ([] if a.table_only else a.trials):
        path = out / f"{name}.json"
        if path.is_file() and not a.force:
            print(f"{name}: finished earlier ({path})")
            continue
        if TRIALS[name].bf16 and not a.emulated_bf16 and not _native_bf16():
            print(f"{name}: skipped, this CPU has no native bfloat16 (a step runs about 20x slower than "
                  "float32); run it on one that has, or pass --emulated-bf16")
            continue
        steps = max(1, round(TRIALS[name].steps * a.steps_scale))
        partial = out / f"{name}.partial.json"
        res = run_trial(name, TRIALS[name], steps, min(a.eval_every, steps), partial)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1))
        tmp.replace(path)
        partial.unlink(missing_ok=True)
    text = table(finished_rows(out))
    print(text)
    (out / "table.md").write_text(text + "\n")  # the appendix includes the study's copy
    print(f"(one thread; {N_TEST} unbiased test images; gate {GATE}; results in {out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
