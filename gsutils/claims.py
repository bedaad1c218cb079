"""The reproduction ledger.

Every claim a reproduced section makes becomes one row: the section, the claim,
the seed paper's number where it gives one, our measured number, the profile,
the criterion used to judge it and the verdict. Chapters record rows with
:meth:`Ledger.check`; each chapter's rows are saved (atomically, after every
row, so an interrupted run keeps what it measured) to
``results/<profile>/claims/<chapter>.json``; the book executor merges them into
``results/<profile>/claims.json``, which the report page tabulates.

A verdict is computed from the measurement by the criterion the chapter
states; it is never typed in by hand.

Two kinds of row share the ledger. A *claim* is something a paper states; a
*gate* is this project's own precondition for judging claims (a network good
enough to be explained), fixed before measuring. A gate that fails says
nothing about the paper, so rows carry their kind and the report counts the
papers' claims apart from the gates (:func:`paper_claims`, :func:`gates`). A
row is a gate when the chapter says so (``Ledger.check(..., kind="gate")``)
or, for rows written before the kind existed, when its id is ``gate``, ends in
``_gate`` or holds ``_gate_``, or its section ends in ``(gate)``
(:func:`is_gate_row`).

Every chapter's gate is one :class:`Gate`: what was measured, the threshold
(from the profile or :mod:`gsutils.references`, fixed before measuring),
whether it passed, the per-network numbers, its own ledger row
(:meth:`Gate.row`) and the "not measured" rule for the claims it guards
(:meth:`Gate.judge`, :meth:`Gate.guard`). A chapter opens with
:func:`open_chapter` (its profile and its ledger) and records its rows with
one ``record_*`` function of :mod:`gsutils.experiments`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from gsutils.io import atomic_write_text
from gsutils.profiles import Profile, get_profile

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_MEASURED = "not measured at this profile"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_MEASURED)
#: the kinds of row: a paper's claim, or a gate of this project's (not a paper claim)
CLAIM = "claim"
GATE = "gate"
KINDS = (CLAIM, GATE)
#: how a gate's verdict reads in the report (its row stores the claims' vocabulary)
GATE_OUTCOME = {REPRODUCED: "gate passed", NOT_REPRODUCED: "gate failed", NOT_MEASURED: "gate not measured"}

_GATE_ID = re.compile(r"(^|_)gate($|_)")


def is_gate_row(id: str, section: str = "") -> bool:
    """Whether a row written without an explicit kind is a gate (by its id or section)."""
    return bool(_GATE_ID.search(id)) or section.rstrip().endswith("(gate)")


@dataclass(frozen=True)
class Claim:
    """One row of the ledger."""

    id: str
    paper: str
    section: str
    claim: str
    criterion: str
    reported: Any
    measured: Any
    profile: str
    verdict: str
    chapter: str
    note: str = ""
    #: :data:`CLAIM` (a paper's claim) or :data:`GATE` (this project's precondition)
    kind: str = CLAIM

    @property
    def is_gate(self) -> bool:
        return self.kind == GATE

    @property
    def outcome(self) -> str:
        """The verdict as the report shows it: a gate passes or fails, a claim is (not) reproduced."""
        return GATE_OUTCOME[self.verdict] if self.is_gate else self.verdict


@dataclass(frozen=True)
class Gate:
    """A gate of this project's: a precondition for judging a chapter's claims, fixed before measuring.

    A claim under a failed gate is "not measured" (:meth:`judge`, :meth:`guard`), with the gate's
    numbers in its note; the gate's own ledger row is :meth:`row`. Gates are never lowered: the
    threshold comes from the profile or :mod:`gsutils.references`.
    """

    #: what was measured, in words ("mean digit IoU of the unbiased small network (1 network(s))")
    what: str
    #: the number compared with the threshold (``None``: nothing gated, e.g. published checkpoints)
    measured: Any
    #: the threshold, fixed before measuring (``None``: no gate applies)
    threshold: float | None
    passed: bool
    #: the gate row's ledger id and section (a chapter may set the section when it records the row)
    id: str = "gate"
    section: str = ""
    #: the gate row's claim and criterion
    claim: str = ""
    criterion: str = ""
    #: per network (or per class) numbers behind ``measured``, as ``((name, value), ...)``
    detail: tuple[tuple[str, Any], ...] = ()
    #: the gate's numbers in words, carried in the notes of the claims it guards (where a chapter does)
    note: str = ""
    #: the note of the gate's own row
    row_note: str = ""
    #: the note a claim under the failed gate carries (:meth:`guard`)
    reason: str = "not measured: below the gate"
    #: what the gate's row shows as measured, when more than ``measured`` (default: ``measured``)
    shown: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.passed, bool) or type(self.passed).__name__ in ("bool_", "bool"):  # numpy's too
            object.__setattr__(self, "passed", bool(self.passed))
        else:
            raise TypeError(f"Gate.passed must be a bool, got {type(self.passed).__name__}")
        if isinstance(self.detail, Mapping):
            object.__setattr__(self, "detail", tuple(self.detail.items()))
        else:
            object.__setattr__(self, "detail", tuple((str(k), v) for k, v in self.detail))

    @property
    def per(self) -> dict[str, Any]:
        """``detail`` as a dict (per network, or per class)."""
        return dict(self.detail)

    def line(self) -> str:
        """The gate in one sentence, for the page."""
        if self.threshold is None:
            return f"Gate: {self.note or self.what}; no threshold applies, the claims are judged."
        value = f"{self.measured:.3f}" if isinstance(self.measured, (int, float)) else str(self.measured)
        if self.detail:
            value += " (" + ", ".join(f"{k} {_fmt(v)}" for k, v in self.detail) + ")"
        verdict = "holds: the claims are judged" if self.passed else "fails: the claims are recorded as not measured"
        return f"Gate: {self.what} {value}; threshold {self.threshold:.2f}; the gate {verdict}."

    def row(self, section: str | None = None, id: str | None = None) -> dict[str, Any]:
        """The gate's own ledger row, as keyword arguments of :meth:`Ledger.check` (``kind="gate"``)."""
        return dict(id=self.id if id is None else id, section=self.section if section is None else section,
                    claim=self.claim, measured=self.measured if self.shown is None else self.shown,
                    passed=self.passed, criterion=self.criterion, note=self.row_note, kind=GATE)

    def judge(self, ok: Any) -> bool | None:
        """A claim's verdict under the gate: ``bool(ok)`` when the gate passed, else ``None`` (not
        measured); ``ok=None`` (not measurable) stays ``None``."""
        if ok is None or not self.passed:
            return None
        return bool(ok)

    def guard(self, claim: dict[str, Any]) -> dict[str, Any]:
        """A claim's keyword arguments under the gate: unchanged when it passed; else not measured,
        with :attr:`reason` (the gate's numbers) before the claim's own note."""
        if self.passed:
            return claim
        return dict(claim, passed=None, note=self.reason + (f"; {claim['note']}" if claim.get("note") else ""))

    def table(self):
        """The gate as a one-row table (what was measured, the value, per network, threshold, outcome),
        numbers to 3 decimals, no row index, no cell cut short."""
        import pandas as pd

        frame = pd.DataFrame([{"measured": self.what, "value": _fmt_cell(self.measured),
                               **{k: _fmt_cell(v) for k, v in self.detail},
                               "threshold": self.threshold, "gate": "holds" if self.passed else "fails"}])
        return frame


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v.strip() in
                                                                       ("", "nan", "NaN", "None", "null"))


def fmt_number(v: float | int) -> str:
    """A number as a reader reads it: ``50,000``, ``0.841``, ``45.2``, ``1.2e-05``."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    text = f"{v:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def fmt_value(v: Any) -> list[str]:
    """A ledger value as lines of text (a dict gives one ``key: value`` line per item); ``[]`` when missing."""
    if _missing(v):
        return []
    if isinstance(v, (bool, int, float)):
        return [fmt_number(v)]
    if isinstance(v, (list, tuple)):
        parts = [" ".join(fmt_value(x)) or "—" for x in v]
        return ["; ".join(parts)] if parts else []
    if isinstance(v, dict):
        return [f"{k}: {'; '.join(fmt_value(x)) or '—'}" for k, x in v.items()]
    return [str(v).strip()]


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _fmt_cell(v: Any) -> Any:
    return round(v, 3) if isinstance(v, float) else v


def _clean(value: Any) -> Any:
    """JSON-friendly, rounded to 4 significant decimals for floats."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(f):
        return None
    if float(f).is_integer() and abs(f) < 1e12 and not isinstance(value, float):
        return int(f)
    return round(f, 4)


class Ledger:
    """Records the claims of one chapter at one profile.

    Parameters
    ----------
    chapter:
        The chapter's id, its path under ``book/`` without the suffix, such as
        ``"grid_saliency/01_toy_dataset"`` (``tests/test_page_skeleton.py``
        checks that every page passes its own path).
    paper:
        ``"grid_saliency"`` or ``"normgrad"``; default: the chapter id's folder.
    profile:
        The :class:`gsutils.profiles.Profile` in use (its name and results
        directory are read).
    """

    def __init__(self, chapter: str, paper: str | None = None, profile: Profile | None = None) -> None:
        if profile is None:
            raise TypeError("Ledger needs the profile in use: Ledger(chapter, profile=cfg)")
        if paper is None:
            paper = chapter.split("/")[0]
        if paper not in ("grid_saliency", "normgrad"):
            raise ValueError(f"paper must be 'grid_saliency' or 'normgrad', got {paper!r}")
        self.chapter = chapter
        self.paper = paper
        self.profile = profile.name
        self.path = Path(profile.results_dir) / "claims" / (chapter.replace("/", "__") + ".json")
        self.claims: dict[str, Claim] = {}

    def check(
        self,
        id: str,
        section: str,
        claim: str,
        *,
        measured: Any,
        passed: bool | None,
        criterion: str,
        reported: Any = None,
        note: str = "",
        kind: str | None = None,
    ) -> Claim:
        """Record one claim; ``passed=None`` means not measurable at this profile.

        ``kind``: :data:`CLAIM` or :data:`GATE`; default: :data:`GATE` when
        :func:`is_gate_row` recognises the id or section, else :data:`CLAIM`.
        """
        if kind is None:
            kind = GATE if is_gate_row(id, section) else CLAIM
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if passed is None:
            verdict = NOT_MEASURED
        elif isinstance(passed, bool) or type(passed).__name__ == "bool_":
            verdict = REPRODUCED if bool(passed) else NOT_REPRODUCED
        else:
            raise TypeError(f"passed must be a bool or None, got {type(passed).__name__}")
        row = Claim(
            id=id,
            paper=self.paper,
            section=section,
            claim=claim,
            criterion=criterion,
            reported=_clean(reported),
            measured=_clean(measured),
            profile=self.profile,
            verdict=verdict,
            chapter=self.chapter,
            note=note,
            kind=kind,
        )
        self.claims[id] = row
        self.save()
        return row

    def save(self) -> Path:
        rows = [asdict(c) for c in self.claims.values()]
        atomic_write_text(self.path, json.dumps(rows, indent=1, sort_keys=True))
        return self.path

    def summary(self) -> str:
        """One line per claim, for printing at the end of a chapter."""
        lines = []
        for c in self.claims.values():
            ours = "; ".join(fmt_value(c.measured)) or "—"
            paper = "; ".join(fmt_value(c.reported))
            lines.append(f"[{c.outcome}] {c.section}: {c.claim}. Ours: {ours}" + (f"; paper: {paper}" if paper else "")
                         + ("" if c.verdict != NOT_MEASURED or not c.note else f" ({c.note})"))
        return "\n".join(lines)

    def table(self):
        """The chapter's rows as a pandas DataFrame (for display)."""
        return claims_frame(list(self.claims.values()))


def open_chapter(chapter: str, *, profile: str = "quick", device: str = "auto", seed: int = 0,
                 data_root: str = "") -> tuple[Profile, Ledger]:
    """A page's opening: its profile (from the parameters cell's values) and its chapter's ledger.

    ``chapter`` is the page's path under ``book/`` without the suffix, such as
    ``"grid_saliency/01_toy_dataset"`` (``tests/test_page_skeleton.py`` checks
    that every page passes its own); an empty ``data_root`` means none.
    """
    cfg = get_profile(profile, device=device, seed=seed, data_root=data_root or None)
    return cfg, Ledger(chapter=chapter, profile=cfg)


def collect(results_dir: str | Path) -> Path:
    """Merge ``claims/*.json`` into ``claims.json`` (sorted by paper, section, id)."""
    results_dir = Path(results_dir)
    rows: list[dict] = []
    for f in sorted((results_dir / "claims").glob("*.json")):
        rows.extend(json.loads(f.read_text()))
    rows.sort(key=lambda r: (r["paper"], r["section"], r["id"]))
    out = results_dir / "claims.json"
    atomic_write_text(out, json.dumps(rows, indent=1, sort_keys=True))
    return out


def _row(r: dict) -> Claim:
    if "kind" not in r:  # written before rows carried their kind
        r = dict(r, kind=GATE if is_gate_row(r["id"], r.get("section", "")) else CLAIM)
    return Claim(**r)


def load(results_dir: str | Path) -> list[Claim]:
    """Every row recorded at a profile, claims and gates (merging the chapters' files first)."""
    path = collect(results_dir)
    return [_row(r) for r in json.loads(path.read_text())]


def paper_claims(rows: list[Claim]) -> list[Claim]:
    """The rows that are the papers' claims (gates left out)."""
    return [r for r in rows if not r.is_gate]


def gates(rows: list[Claim]) -> list[Claim]:
    """The gate rows: this project's preconditions, not paper claims."""
    return [r for r in rows if r.is_gate]


def claims_frame(claims: list[Claim]):
    import pandas as pd

    cols = ["kind", "section", "claim", "reported", "measured", "criterion", "verdict", "note", "profile"]
    return pd.DataFrame([{**{k: getattr(c, k) for k in cols}, "verdict": c.outcome} for c in claims], columns=cols)
