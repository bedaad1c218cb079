"""The logged first training steps of the shipped NormGrad networks, to re-run.

The stand-in classifiers (``"classifier"``) and the captioner
(``"captioner"``), each as a
:class:`gsutils.experiments.common.provenance.ShippedTrace` that
:func:`gsutils.experiments.common.provenance.check` compares. The Grid
Saliency networks' traces are :mod:`gsutils.experiments.grid.shipped_traces`.
"""

from __future__ import annotations

import json

from gsutils.experiments.common.provenance import ShippedTrace, as_floats, one_thread

#: the kinds of network this module traces (``which`` of :func:`shipped_traces`)
WHICH = ("classifier", "captioner")


def shipped_traces(profile, which: str = "all") -> list[ShippedTrace]:
    """The shipped NormGrad networks of ``profile`` (``which``: ``"all"`` or one of
    :data:`WHICH`; another kind gives none), each with its logged first steps."""
    out: list[ShippedTrace] = []
    if which in ("all", "classifier"):
        from gsutils.experiments.normgrad import classifier_training as ct

        for arch in profile.normgrad.archs:
            net = ct.shipped_network(profile, arch)
            hist = json.loads((net.path / "history.json").read_text())
            out.append(ShippedTrace(arch, "classifier", net.path, as_floats(hist[0]["first_losses"][:3]),
                                    net.provenance(),
                                    one_thread(lambda n, arch=arch: ct.first_step_losses(profile, arch, n))))
    if which in ("all", "captioner"):
        from gsutils.experiments.common.store import decode
        from gsutils.experiments.normgrad import captioning as cap
        from gsutils.io import read_checked

        net = cap.shipped_network(profile)
        folder = net.path
        hist = json.loads((folder / "history.json").read_text())

        def rerun(n: int) -> list[float]:
            vocab = cap.Vocabulary(decode(read_checked(folder / "model.pt"), "pt")["vocab"])
            return cap.first_step_losses(profile, vocab, n)
        out.append(ShippedTrace("captioner", "captioner", folder, as_floats(hist[0]["first_losses"][:4]),
                                net.provenance(),
                                one_thread(rerun), exact=bool(profile.captioning.train_encoder)))
    return out
