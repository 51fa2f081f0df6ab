"""How much of the observed EI intensity falls on m/z that enumerated fragments reach, and what the enumeration
costs: `python -m nextims.bench fragments [bench.fragments.molecules=N] [bench.fragments.seed=S] [overrides]`.

It reads the training split of the bench config's data (hydra overrides such as data=tiny apply), one
record per compound (the reference library's choice), and for a fixed-seed sample of them prints the enumeration
time per molecule, the ions per molecule, and per level (molecular ion; at most one cut; at most two cuts; each
without and with hydrogen shifts) the mean share of each spectrum's intensity on covered m/z, the same share
with intensities weighted as library matching weights them (sqrt(intensity) * m/z), and the share of the m/z
1..M (M the molecule's nominal mass) covered: the intensity share a set of that many m/z drawn at random would
cover on average, one chance level to compare with. A stricter one, `decoy`: the intensity share that the same
level's m/z of another sampled molecule (the nearest in nominal mass) cover, which keeps the clustering of
fragment m/z (CnHm series) that a uniform draw lacks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig
from rdkit import Chem

from nextims.data.fragments import H_SHIFTS, Pieces, enumerate_fragments, ion_mz
from nextims.phases.common import load_data


@dataclass(frozen=True)
class Level:
    """One coverage level: ions of pieces of at most max_cuts cuts, with hydrogen shifts or without."""

    name: str
    max_cuts: int
    shifted: bool


LEVELS = (Level("M", 0, False), Level("M + H loss", 0, True), Level("<=1 cut", 1, False),
          Level("<=1 cut + H shifts", 1, True), Level("<=2 cuts", 2, False), Level("<=2 cuts + H shifts", 2, True))


def spectrum_coverage(spectrum: np.ndarray, mz: np.ndarray, mass: int) -> tuple[float, float, float, int]:
    """(share of intensity, share of sqrt(intensity) * m/z, share of the m/z 1..mass, how many of those) on the
    m/z in `mz`, for a binned spectrum (index = m/z)."""
    top = min(int(mass), len(spectrum) - 1)
    mz = mz[(mz >= 1) & (mz < len(spectrum))]
    intensity = np.asarray(spectrum, dtype=np.float64)
    weighted = np.sqrt(intensity) * np.arange(len(intensity))
    covered = np.zeros(len(intensity), dtype=bool)
    covered[mz] = True
    share = float(intensity[covered].sum() / max(intensity.sum(), 1e-300))
    weighted_share = float(weighted[covered].sum() / max(weighted.sum(), 1e-300))
    bins = int(covered[1:top + 1].sum())
    return share, weighted_share, bins / max(top, 1), bins


def level_mz(pieces: Pieces, level: Level, h_shifts: tuple[int, ...]) -> np.ndarray:
    """The distinct m/z of one level's ions."""
    return ion_mz(pieces, level.max_cuts, h_shifts if level.shifted else (0,))


@dataclass
class CoverageReport:
    """Per molecule: enumeration time (ms), ions by their simplest source's cut count, distinct m/z, and per
    level (rows of LEVELS) the coverage shares and covered m/z (spectrum_coverage) and the intensity share that
    the same level's m/z of a decoy (the sampled molecule next in nominal mass) cover."""

    ms: np.ndarray
    ions: np.ndarray  # (N, 3) ions whose simplest source has 0, 1, 2 cuts
    distinct_mz: np.ndarray
    coverage: np.ndarray  # (N, len(LEVELS), 4) intensity, weighted and m/z-bin shares, covered m/z
    decoy: np.ndarray  # (N, len(LEVELS)) intensity share on the decoy's m/z


def decoys(masses: np.ndarray) -> np.ndarray:
    """For each molecule, another one of the nearest nominal mass (-1 when there is no other)."""
    order = np.argsort(masses, kind="stable")
    out = np.full(len(masses), -1, dtype=np.int64)
    for p, i in enumerate(order):
        near = [order[q] for q in (p - 1, p + 1) if 0 <= q < len(order)]
        if near:
            out[i] = min(near, key=lambda j: (abs(int(masses[j]) - int(masses[i])), j))
    return out


def measure(smiles: Sequence[str], spectra: np.ndarray, h_shifts: tuple[int, ...] = H_SHIFTS) -> CoverageReport:
    """Enumerate the fragments of each molecule (timed, SMILES parsing excluded) and score each level's
    coverage of its spectrum and of a decoy's."""
    ms, ions, distinct, coverage, masses, level_sets = [], [], [], [], [], []
    for smi, spectrum in zip(smiles, spectra):
        mol = Chem.MolFromSmiles(smi)
        start = time.perf_counter()
        fragments = enumerate_fragments(mol, 2, h_shifts)
        ms.append(1000 * (time.perf_counter() - start))
        ions.append(np.bincount(fragments.n_cuts.astype(np.int64), minlength=3)[:3])
        distinct.append(len(np.unique(fragments.mz)))
        masses.append(int(fragments.pieces.mass[0]))
        level_sets.append([level_mz(fragments.pieces, level, h_shifts) for level in LEVELS])
        coverage.append([spectrum_coverage(spectrum, mz, masses[-1]) for mz in level_sets[-1]])
    decoy = np.full((len(masses), len(LEVELS)), np.nan)
    for i, j in enumerate(decoys(np.array(masses, dtype=np.int64))):
        if j >= 0:
            decoy[i] = [spectrum_coverage(spectra[i], mz, masses[i])[0] for mz in level_sets[j]]
    return CoverageReport(np.array(ms), np.array(ions).reshape(-1, 3), np.array(distinct),
                          np.array(coverage).reshape(-1, len(LEVELS), 4), decoy)


def format_report(report: CoverageReport, h_shifts: tuple[int, ...]) -> list[str]:
    """The printed table and the summary line."""
    n = len(report.ms)
    lines = [f"enumeration: {report.ms.mean():.2f} ms/molecule (p95 {np.percentile(report.ms, 95):.2f}, "
             f"max {report.ms.max():.2f}) over {n} molecules, max_cuts=2, h_shifts={list(h_shifts)}",
             f"ions/molecule: {report.ions.sum(axis=1).mean():.1f} (simplest source: molecular ion "
             f"{report.ions[:, 0].mean():.1f}, 1 cut {report.ions[:, 1].mean():.1f}, 2 cuts "
             f"{report.ions[:, 2].mean():.1f}); distinct m/z {report.distinct_mz.mean():.1f}",
             f"{'level':<22}{'intensity':>10}{'sqrt(I)*mz':>12}{'m/z 1..M':>10}{'m/z/mol':>9}{'decoy':>8}"]
    mean, decoy = report.coverage.mean(axis=0), np.nanmean(report.decoy, axis=0) if n > 1 else [np.nan] * len(LEVELS)
    for k, level in enumerate(LEVELS):
        lines.append(f"{level.name:<22}{mean[k, 0]:>10.3f}{mean[k, 1]:>12.3f}{mean[k, 2]:>10.3f}"
                     f"{mean[k, 3]:>9.1f}{decoy[k]:>8.3f}")
    one, two = mean[3, 0], mean[5, 0]
    lines.append(f"fragments molecules={n} ms_per_mol={report.ms.mean():.3f} coverage_1cut={one:.4f} "
                 f"coverage_2cut={two:.4f}")
    return lines


def training_sample(cfg: DictConfig, limit: int, seed: int) -> tuple[list[str], np.ndarray]:
    """SMILES and binned spectra of a fixed-seed sample of `limit` training compounds (one record each)."""
    data = load_data(cfg)
    rep = data.representative_records()
    train = rep[data.compound_split == "train"]
    chosen = np.sort(np.random.default_rng(seed).permutation(len(train))[:limit])
    records = train[chosen]
    return [data.records[i].smiles for i in records], data.spectra[records]


def bench_fragments(cfg: DictConfig) -> list[str]:
    """Run the measurement on bench.fragments' sample and print its table."""
    bench = cfg.bench.fragments
    smiles, spectra = training_sample(cfg, int(bench.molecules), int(bench.seed))
    shifts = tuple(sorted(set(int(s) for s in bench.h_shifts) | {0}))
    lines = format_report(measure(smiles, spectra, shifts), shifts)
    print("\n".join(lines))
    return lines
