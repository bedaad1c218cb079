"""Every number cited from a supplement occurs in that supplement's text.

``gsutils.references.CITED`` gives, for each constant taken from a supplement,
passages of the supplement that hold its numbers. The supplements' text lies in
``../shared/papers/`` beside the checkout; the tests that read it are skipped
where it is absent. The others check the bookkeeping itself: every published
constant has a source, and the settings the paper profile calls "the paper's"
are the supplement's.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from gsutils import references as ref
from gsutils.paths import REPO_ROOT

PAPERS = REPO_ROOT.parent / "shared" / "papers"
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
         "ten": 10}


def normalised(text: str) -> str:
    """Whitespace collapsed to single spaces (the supplements' text is extracted from PDFs)."""
    return " ".join(text.split())


def numbers_in(text: str) -> list[float]:
    """Every number printed in ``text``: decimals, ``50k``, ``10−3`` (a power of ten), number words."""
    power = r"\b10[−-](\d+)"
    out = [10.0 ** -int(m.group(1)) for m in re.finditer(power, text)]
    rest = re.sub(power, " ", text).replace("−", "-")
    for m in re.finditer(r"(?<![\d.\w])-?\d+(?:\.\d+)?(k\b)?", rest):
        tok = m.group(0)
        out.append(float(tok[:-1]) * 1000 if tok.endswith("k") else float(tok))
    out += [float(WORDS[w]) for w in re.findall(r"[a-z]+", text.lower()) if w in WORDS]
    return out


def leaves(value) -> list:
    """The numbers and strings a constant holds (dict values, tuple items), in order."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in leaves(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in leaves(v)]
    return [value]


def _supplement(paper: str) -> str:
    path = PAPERS / ref.SUPPLEMENT_FILES[paper]
    if not path.is_file():
        pytest.skip(f"the supplement's text is not at {path}")
    return normalised(path.read_text(encoding="utf-8"))


SUPPLEMENT_CITED = [c for c in ref.CITED if c.source in ref.SUPPLEMENTS]


def test_the_number_reader():
    assert numbers_in("10−3 and 10−4 for the first 40") == [1e-3, 1e-4, 40.0]
    assert numbers_in("50k images, 1k images, -3.01, 0.53\\%") == [50_000.0, 1000.0, -3.01, 0.53]
    assert numbers_in("feat.29 layer4 over five seeds") == [5.0]
    assert leaves({"a": (1, "feat.8"), "b": {"c": 2.5}}) == [1, "feat.8", 2.5]


def test_every_published_constant_has_a_source():
    names = {c.name for c in ref.CITED}
    assert len(names) == len(ref.CITED), "a constant is cited twice"
    for c in ref.CITED:
        assert hasattr(ref, c.name), f"CITED names {c.name}, which references.py does not define"
        assert c.source in (*ref.SUPPLEMENTS, "poster", "torchray"), c
        assert c.where, c
        assert bool(c.quotes) == (c.source in ref.SUPPLEMENTS), f"{c.name}: quotes only for a supplement"
    # the constants that hold published numbers (not thresholds of ours) are all cited
    published = [n for n in dir(ref) if n.isupper() and not n.startswith("_")
                 and not isinstance(getattr(ref, n), str)
                 and (n.endswith(("_POSTER", "_TABLE1", "_RANGE", "_DIFF", "_SETTINGS", "_COUNTS", "_GAINS",
                                  "_LAYERS", "_PX", "_IMAGES", "_PERCENT")) or n == "TORCHRAY_VOC07")]
    assert set(published) - {"IDENTITY_TRICK_SPEARMAN"} <= names, set(published) - names


@pytest.mark.parametrize("c", SUPPLEMENT_CITED, ids=lambda c: c.name)
def test_each_quote_is_in_its_supplement(c):
    text = _supplement(c.source)
    for q in c.quotes:
        assert normalised(q) in text, f"{c.name} ({c.where}): {q!r} is not in the {c.source} supplement"


@pytest.mark.parametrize("c", SUPPLEMENT_CITED, ids=lambda c: c.name)
def test_each_number_of_a_cited_constant_is_in_its_quotes(c):
    _supplement(c.source)  # skip with the text absent, like the quotes
    printed = [n for q in c.quotes for n in numbers_in(q)]
    words = " ".join(c.quotes)
    for v in leaves(getattr(ref, c.name)):
        if isinstance(v, str):
            assert v in words, f"{c.name}: {v!r} is not in its quotes"
        else:
            assert any(math.isclose(float(v), p, rel_tol=1e-9, abs_tol=1e-12) for p in printed), \
                f"{c.name}: {v!r} is not printed in its quotes {c.quotes}"


def test_a_wrong_number_would_be_caught():
    text = normalised("ResNet50 layer1.0.conv1 99.48 ± 0.55")
    assert "ResNet50 layer1.0.conv1 99.50 ± 0.55" not in text
    assert not any(math.isclose(99.5, p) for p in numbers_in(text))


def test_table_helpers():
    assert ref.table2_best_layer("gradient", "vgg16", "difficult") == "features.22"
    assert ref.table2_best_layer("guided_backprop", "vgg16") == "input"
    assert ref.table2_best_layer("normgrad", "resnet50") == "layer3"
    with pytest.raises(ValueError, match="no method"):
        ref.table2_best_layer("nope", "vgg16")
    assert ref.table3_gain("linear_approx", "product", "spread", "vgg16", "difficult") == -6.80
    assert ref.IDENTITY_TRICK_CORRELATION_RANGE == (94.33, 99.48)
    assert set(ref.TABLE2_ABBREVIATIONS) == set(ref.TABLE2_BEST_LAYERS)
    assert ref.source_line("TABLE3_GAINS") == "NormGrad supplement, Section C, Table 3"


def test_the_paper_profile_uses_the_supplements_settings():
    from gsutils.experiments.normgrad.normgrad_maps import TRICK_LAYERS
    from gsutils.models.classifiers import CANDIDATE_LAYERS
    from gsutils.profiles import get_profile
    from gsutils.saliency.grid import GridSaliencyConfig

    s = ref.GRID_SALIENCY_S1_SETTINGS
    p = get_profile("paper", device="cpu")
    assert (p.toy.resolution, p.toy.n_train, p.toy.n_test) == (s["image_side"], s["n_train"], s["n_test"])
    assert (p.train.epochs, p.train.batch_size, p.train.lr, p.train.lr_late) == (
        s["epochs"], s["batch_size"], s["lr"], s["lr_late"])
    assert p.train.late_fraction == pytest.approx(s["late_epochs"] / s["epochs"])
    assert (p.saliency.grid_steps, p.saliency.ig_steps, p.saliency.sg_samples) == (
        s["steps"], s["ig_steps"], s["sg_samples"])
    assert (len(p.grid.seeds), len(p.grid.bias_textures)) == (s["seeds"], s["bias_textures"])
    g = GridSaliencyConfig()
    assert g.grid == (s["mask_side"], s["mask_side"]) and g.greys == tuple(s["greys"])
    assert (g.erosion, g.steps, g.lr, g.momentum, g.init, g.clip_below, g.lam) == (
        s["erosion"], s["steps"], s["sgd_lr"], s["sgd_momentum"], s["init"], s["clip_below"], s["lam"])
    assert p.normgrad.tolerance == ref.POINTING_TOLERANCE_PX
    # Table 1's and Table 2's layers are layers the library computes maps at
    assert {layer for (_, layer) in ref.IDENTITY_TRICK_TABLE1} == {x for v in TRICK_LAYERS.values() for x in v}
    for method in ref.TABLE2_BEST_LAYERS:
        for arch in ("vgg16", "resnet50"):
            for subset in ("all", "difficult"):
                assert ref.table2_best_layer(method, arch, subset) in CANDIDATE_LAYERS[arch]


def test_no_page_holds_a_supplement_number_that_references_lack():
    # the S2 page once said its poster value was "as quoted in the project's plan; not re-read"
    book = Path(REPO_ROOT) / "book"
    for page in book.rglob("*.py"):
        assert "not re-read" not in page.read_text(), page
    assert "not re-read" not in Path(ref.__file__).read_text()
