"""The reproduction scorecard: every measured claim of the paper the book tests, one row each.

Each row holds the paper's statement (Yang et al. 2020: §3, Table 1; §5.1; §5.2), and a
verdict per tier of records: this build's (``ci``) and the published GPU run's (``gpu``).
Verdicts follow :mod:`lib.stats` (holds / contradicted / within noise beyond two standard
errors), or are exact where the measurement has no noise (the separation of a dataset);
a tier that did not run a comparison says "not run", and a record made with an objective
that has since been fixed is left out (:func:`lib.robustness.defenses.is_superseded`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lib.robustness import defenses
from lib.robustness import generalization as gen
from lib.robustness.objectives import DISPLAY_NAMES
from lib.separation import display_name
from lib.stats import Verdict


@dataclass(frozen=True)
class Cell:
    """One tier's verdict on one claim, with how it came about (``"3 pairs: 3 holds"``)."""

    verdict: Verdict
    detail: str = ""

    def markdown(self) -> str:
        return f"**{self.verdict.value}**" + (f" ({self.detail})" if self.detail else "")


NOT_RUN = Cell(Verdict.NOT_RUN)


@dataclass(frozen=True)
class Row:
    """A claim of the paper and each tier's verdict on it."""

    section: str
    statement: str
    cells: Mapping[str, Cell]


def separation_rows(results: Mapping[str, dict[str, Any] | None], paper: Mapping[str, dict[str, float]],
                    eps: Mapping[str, float | None], tier: str = "ci") -> list[Row]:
    """§3, Table 1: each of the paper's datasets is separated beyond 2 eps, and its values are reproduced.

    ``results``: :func:`lib.separation.cached_dataset_separation` per dataset (None when its files
    are absent). The separation is exact (no noise): the verdict is exact too, and the same on
    any machine, so only ``tier`` has a cell (the others show "–").
    """
    rows = []
    for name, reference in paper.items():
        result = results.get(name)
        title = display_name(name)
        if result is None:
            cells = {tier: NOT_RUN}
            reproduced = {tier: NOT_RUN}
        else:
            smaller = min(result["train_train"]["separation"], result["test_train"]["separation"])
            budget = 2 * eps[name]
            cells = {tier: Cell(Verdict.HOLDS if smaller > budget else Verdict.CONTRADICTED,
                                f"{smaller:.3f} vs 2ε = {budget:g}; exact")}
            same = all(round(result[k]["separation"], 3) == reference[k] for k in ("train_train", "test_train"))
            reproduced = {tier: Cell(Verdict.HOLDS if same else Verdict.CONTRADICTED,
                                     f"{result['train_train']['separation']:.3f} and "
                                     f"{result['test_train']['separation']:.3f}; exact")}
        rows.append(Row("§3, Table 1", f"{title} is separated far beyond the attack budget: its "
                        f"separation exceeds 2ε = {2 * reference['eps']:g}", cells))
        rows.append(Row("§3, Table 1", f"{title}'s train–train and test–train separations are "
                        f"{reference['train_train']:.3f} and {reference['test_train']:.3f}", reproduced))
    return rows


def _valid(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if not defenses.is_superseded(r)]


def defense_rows(tiers: Mapping[str, Mapping[str, Sequence[dict[str, Any]]]]) -> list[Row]:
    """§5.1: every claim of :data:`lib.robustness.defenses.CLAIMS` against every compared method.

    ``tiers``: ``{tier: {dataset: records}}``. A cell lists each dataset's verdict.
    """
    found: dict[tuple[str, str], dict[str, list[str]]] = {}
    combined: dict[tuple[str, str], dict[str, list[Verdict]]] = {}
    for tier, by_dataset in tiers.items():
        for dataset, records in by_dataset.items():
            records = _valid(records)
            if not any(r["method"] in ("at", "rst", "trades") for r in records):
                continue
            for result in defenses.claims(records):
                key = (result.claim.key, result.against)
                detail = f"{defenses.dataset_name(dataset)}: {result.verdict.value}"
                found.setdefault(key, {}).setdefault(tier, []).append(detail)
                combined.setdefault(key, {}).setdefault(tier, []).append(result.verdict)
    rows = []
    for claim in defenses.CLAIMS:
        for method in claim.against:
            key = (claim.key, method)
            cells = {tier: Cell(_overall(combined.get(key, {}).get(tier, [])), "; ".join(found[key][tier]))
                     if tier in found.get(key, {}) else NOT_RUN for tier in tiers}
            rows.append(Row("§5.1", f"{claim.statement[0].upper()}{claim.statement[1:]} than "
                            f"{DISPLAY_NAMES[method]}", cells))
    return rows


def _overall(verdicts: Sequence[Verdict]) -> Verdict:
    """Across datasets: one verdict when they agree, else within noise unless one contradicts."""
    if not verdicts:
        return Verdict.NOT_RUN
    if len(set(verdicts)) == 1:
        return verdicts[0]
    return Verdict.CONTRADICTED if Verdict.CONTRADICTED in verdicts else Verdict.WITHIN_NOISE


def dropout_rows(tiers: Mapping[str, Sequence[dict[str, Any]]]) -> list[Row]:
    """§5.2: each part of dropout's effect on the robust methods, over the (without, with) pairs."""
    verdicts = {}
    for tier, records in tiers.items():
        pairs = gen.dropout_pairs(_valid(records))
        verdicts[tier] = gen.dropout_verdict(pairs) if pairs else None
    rows = []
    for key, statement, _ in gen.DROPOUT_EFFECTS[:4]:
        cells = {tier: NOT_RUN if v is None else Cell(v[key]["verdict"], v[key]["tally"])
                 for tier, v in verdicts.items()}
        rows.append(Row("§5.2", f"Dropout {statement} of AT, RST and TRADES", cells))
    return rows


def markdown(rows: Sequence[Row], tiers: Sequence[str], headings: Mapping[str, str]) -> str:
    """The scorecard as a Markdown table: section, the paper's statement, one column per tier
    ("–" where a tier has no cell: an exact result is the same on every machine)."""
    lines = ["| section | the paper's statement | " + " | ".join(headings[t] for t in tiers) + " |",
             "|---|---|" + "---|" * len(tiers)]
    for row in rows:
        cells = [row.cells[t].markdown() if t in row.cells else "–" for t in tiers]
        lines.append(f"| {row.section} | {row.statement} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: Sequence[Row], tier: str) -> dict[str, int]:
    """How many rows of ``tier`` fell under each verdict (rows without a cell for ``tier`` are not counted)."""
    verdicts = [row.cells[tier].verdict for row in rows if tier in row.cells]
    return {v.value: sum(x is v for x in verdicts) for v in Verdict}

