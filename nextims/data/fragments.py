"""Fragments of up to two bond cleavages: the connected pieces left by cutting one bond outside a ring, two such
bonds (the piece between them), or two bonds of one ring system that together split it (a ring opened twice), with
their formulas, nominal masses and the ions they give with hydrogen transfers.

Molecules are taken at the heavy-atom level: hydrogens (implicit ones, and explicit H atoms bonded to a heavy
atom) travel with their heavy atom and are never cut off alone. A hydrogen transfer is represented on the ion:
an ion of piece P with shift s has P's formula with s hydrogens more (s < 0: fewer) and m/z = P's nominal mass
+ s. The hydrogens must exist: P keeps at least none (H(P) + s >= 0) and the rest of the molecule gives at most
all of its own (s <= H(M) - H(P)). So the molecular ion (0 cuts) only loses hydrogens (M-H, M-2H), and the
benzylic C7H7+ of toluene is its molecular ion with shift -1. Ions are deduplicated by ion formula. Every bond
outside rings can be cut, whatever its order (as CleavageSites does); formulas ignore isotope labels, masses count
them (as nominal_mass); a molecule of several parts keeps them all in its molecular ion.

Which pairs of bonds split the molecule: two bonds outside rings (bridges) always do (three pieces, of which the
middle one is new: the outer two are the single cuts'); a bond outside rings with one in a ring leaves the single
cut's two pieces; two ring bonds split it exactly when every ring of a cycle basis holds both or neither (their
ring memberships are equal: then the pair is orthogonal to the cycle space, i.e. an edge cut), which for one ring
is any pair of its bonds, and for fused rings excludes a pair on two different rings. The cut bonds of a piece
are exactly the bonds leaving it, so no two cut sets give one piece and no piece needs deduplicating.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem

H_SHIFTS = (-2, -1, 0, 1, 2)
_PERIODIC_TABLE = Chem.GetPeriodicTable()


@dataclass
class Pieces:
    """The distinct pieces of a molecule (the molecular ion first, then single cuts, then two cuts).

    atoms: (P, n) bool over `nodes`, the molecule's heavy atoms (their indices in the input molecule);
    n_cuts: (P,) 0, 1 or 2; cuts: per piece, the RDKit indices of the bonds cut; counts: (P, E) atoms of each of
    `elements` (hydrogens included); mass: (P,) the neutral piece's nominal mass, its own hydrogens included.
    """

    nodes: np.ndarray
    atoms: np.ndarray
    n_cuts: np.ndarray
    cuts: list[tuple[int, ...]]
    elements: tuple[str, ...]
    counts: np.ndarray
    mass: np.ndarray

    @property
    def hydrogens(self) -> np.ndarray:
        """(P,) hydrogens of each piece."""
        return self.counts[:, self.elements.index("H")]

    def __len__(self) -> int:
        return len(self.n_cuts)


@dataclass
class Fragments:
    """The distinct fragment ions of a molecule, by ion formula, sorted by m/z then formula.

    formula: Hill formula of the ion (hydrogen shift applied); mz: (F,) nominal m/z; n_cuts, h_shift, cuts and
    atoms: those of its simplest source (fewest cuts, then smallest |shift|, then the negative shift); atoms as
    input atom indices (heavy atoms); sources: every (cut bonds, shift) that gives the ion; pieces: what they
    were made from.
    """

    formula: list[str]
    mz: np.ndarray
    n_cuts: np.ndarray
    h_shift: np.ndarray
    cuts: list[tuple[int, ...]]
    atoms: list[np.ndarray]
    sources: list[list[tuple[tuple[int, ...], int]]]
    pieces: Pieces

    def __len__(self) -> int:
        return len(self.formula)


def _heavy_graph(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(node atom indices, node masses, node hydrogens, bonds between nodes as rows (bond, begin node, end node),
    node element symbols). Explicit H atoms bonded to one heavy atom are folded into it."""
    folded = np.zeros(mol.GetNumAtoms(), dtype=bool)
    extra_mass = np.zeros(mol.GetNumAtoms(), dtype=np.int64)
    extra_h = np.zeros(mol.GetNumAtoms(), dtype=np.int64)
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 1 and atom.GetDegree() == 1:
            heavy = atom.GetNeighbors()[0]
            if heavy.GetAtomicNum() != 1:
                folded[atom.GetIdx()] = True
                extra_mass[heavy.GetIdx()] += atom.GetIsotope() or 1
                extra_h[heavy.GetIdx()] += 1
    nodes = np.nonzero(~folded)[0]
    index = {int(a): i for i, a in enumerate(nodes)}
    mass, hydrogens, symbols = [], [], []
    for a in nodes.tolist():
        atom = mol.GetAtomWithIdx(a)
        implicit = atom.GetTotalNumHs()  # explicit-H property and implicit ones, not H neighbours
        mass.append((atom.GetIsotope() or _PERIODIC_TABLE.GetMostCommonIsotope(atom.GetAtomicNum())) + implicit
                    + int(extra_mass[a]))
        hydrogens.append(implicit + int(extra_h[a]))
        symbols.append(atom.GetSymbol())
    bonds = [(b.GetIdx(), index[b.GetBeginAtomIdx()], index[b.GetEndAtomIdx()]) for b in mol.GetBonds()
             if b.GetBeginAtomIdx() in index and b.GetEndAtomIdx() in index]
    return (nodes, np.array(mass, np.int64), np.array(hydrogens, np.int64), np.array(bonds, np.int64).reshape(-1, 3),
            symbols)


def _bond_rings(mol: Chem.Mol, n_atoms: int, n_bonds: int, n_parts: int) -> tuple[tuple[int, ...], ...]:
    """The bond rings of RDKit's ring perception; perceived on a copy when the molecule's ring information does
    not span its cycle space (an unsanitized molecule has none)."""
    rings = mol.GetRingInfo().BondRings()
    if len(rings) < n_bonds - n_atoms + n_parts:
        mol = Chem.Mol(mol)
        Chem.GetSymmSSSR(mol)
        rings = mol.GetRingInfo().BondRings()
    return rings


def _reach(start: int, adjacency: list[list[tuple[int, int]]], cut1: int, cut2: int) -> int:
    """Bitmask of the nodes reachable from start without crossing bonds cut1 and cut2."""
    seen, stack = 1 << start, [start]
    while stack:
        for v, b in adjacency[stack.pop()]:
            if b != cut1 and b != cut2 and not seen >> v & 1:
                seen |= 1 << v
                stack.append(v)
    return seen


def _mask_rows(masks: list[int], n: int) -> np.ndarray:
    """(len(masks), n) bool rows of integer bitmasks."""
    if not masks:
        return np.zeros((0, n), dtype=bool)
    width = (n + 7) // 8
    raw = np.frombuffer(b"".join(m.to_bytes(width, "little") for m in masks), np.uint8).reshape(len(masks), width)
    return np.unpackbits(raw, axis=1, bitorder="little")[:, :n].astype(bool)


def fragment_pieces(mol: Chem.Mol, max_cuts: int = 2) -> Pieces:
    """The molecular ion and the pieces of up to max_cuts (0, 1 or 2) bond cleavages of mol (see the module)."""
    if max_cuts not in (0, 1, 2):
        raise ValueError(f"max_cuts={max_cuts}: 0, 1 or 2")
    nodes, node_mass, node_h, bonds, symbols = _heavy_graph(mol)
    n = len(nodes)
    distance = Chem.GetDistanceMatrix(mol)[np.ix_(nodes, nodes)]
    reachable = distance < n + 1
    n_parts = len({tuple(row) for row in reachable.tolist()})
    rings = _bond_rings(mol, n, len(bonds), n_parts)
    label: dict[int, int] = {}  # bond -> bitmask of the rings holding it
    for r, ring in enumerate(rings):
        for b in ring:
            label[b] = label.get(b, 0) | 1 << r
    rows = [np.ones((1, n), dtype=bool)]
    n_cuts, cuts = [0], [()]
    bridge = np.array([int(b) not in label for b in bonds[:, 0]], dtype=bool)
    bridges = bonds[bridge]
    if max_cuts >= 1 and len(bridges):
        begin, end = bridges[:, 1], bridges[:, 2]
        # the side of a bridge holding its end atom: the atoms nearer (in bonds) to end than to begin
        end_side = (distance[:, end] < distance[:, begin]).T
        begin_side = (distance[:, begin] < distance[:, end]).T
        rows += [end_side, begin_side]
        n_cuts += [1] * (2 * len(bridges))
        cuts += [(int(b),) for b in bridges[:, 0]] * 2
        if max_cuts == 2 and len(bridges) > 1:
            # toward[i, j]: the side of bridge i that holds bridge j; the middle piece of i and j is where the
            # side of i toward j meets the side of j toward i
            holds = end_side[:, begin]  # (i, j): bridge j's begin atom on bridge i's end side
            toward = np.where(holds[:, :, None], end_side[:, None, :], begin_side[:, None, :])
            i, j = np.triu_indices(len(bridges), k=1)
            middle = toward[i, j] & toward[j, i]
            keep = middle.any(axis=1)  # bridges of two disconnected parts meet nowhere
            rows.append(middle[keep])
            n_cuts += [2] * int(keep.sum())
            cuts += [(int(bridges[a, 0]), int(bridges[b, 0])) for a, b in zip(i[keep], j[keep])]
    if max_cuts == 2 and label:
        adjacency: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for b, u, v in bonds.tolist():
            adjacency[u].append((v, b))
            adjacency[v].append((u, b))
        ends = {int(b): (int(u), int(v)) for b, u, v in bonds}
        classes: dict[int, list[int]] = {}
        for b in sorted(label):
            if b in ends:
                classes.setdefault(label[b], []).append(b)
        masks, pair_cuts = [], []
        for members in classes.values():
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    b1, b2 = members[x], members[y]
                    u, v = ends[b1]
                    masks += [_reach(u, adjacency, b1, b2), _reach(v, adjacency, b1, b2)]
                    pair_cuts += [(b1, b2)] * 2
        rows.append(_mask_rows(masks, n))
        n_cuts += [2] * len(masks)
        cuts += pair_cuts
    atoms = np.concatenate(rows)
    elements = tuple(sorted(set(symbols) | {"H"}))
    onehot = np.zeros((n, len(elements)), dtype=np.int64)
    onehot[np.arange(n), [elements.index(s) for s in symbols]] = 1
    onehot[:, elements.index("H")] += node_h
    weights = atoms.astype(np.int64)
    return Pieces(nodes, atoms, np.array(n_cuts, np.int8), cuts, elements, weights @ onehot, weights @ node_mass)


def _ions(pieces: Pieces, max_cuts: int, h_shifts: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(piece index, shift) of every possible ion of the pieces of at most max_cuts cuts: hydrogens moved only
    from where they are, and no ion left without atoms."""
    hydrogens = pieces.hydrogens
    shift = np.asarray(sorted(set(int(s) for s in h_shifts)), dtype=np.int64)
    piece = np.repeat(np.arange(len(pieces)), len(shift))
    shift = np.tile(shift, len(pieces))
    h = hydrogens[piece]
    ok = (h + shift >= 0) & (shift <= hydrogens[0] - h) & (pieces.n_cuts[piece] <= max_cuts)
    ok &= pieces.counts.sum(axis=1)[piece] + shift > 0  # an ion keeps an atom (H2 loses at most one H)
    return piece[ok], shift[ok]


def ion_mz(pieces: Pieces, max_cuts: int = 2, h_shifts: tuple[int, ...] = H_SHIFTS) -> np.ndarray:
    """The distinct nominal m/z (sorted) of the ions of pieces of at most max_cuts cuts with the given shifts."""
    piece, shift = _ions(pieces, max_cuts, h_shifts)
    return np.unique(pieces.mass[piece] + shift)


def hill_formula(counts: dict[str, int]) -> str:
    """A formula in Hill order (C, H, then alphabetical; all alphabetical without carbon), counts of 1 omitted."""
    present = {e: c for e, c in counts.items() if c > 0}
    head = [e for e in ("C", "H") if e in present] if "C" in present else []
    order = head + sorted(e for e in present if e not in head)
    return "".join(e + (str(present[e]) if present[e] > 1 else "") for e in order)


def enumerate_fragments(mol: Chem.Mol, max_cuts: int = 2, h_shifts: tuple[int, ...] = H_SHIFTS) -> Fragments:
    """The distinct fragment ions (by ion formula) of up to max_cuts bond cleavages of mol, each piece with the
    given hydrogen shifts, the molecular ion included (see the module for the rules)."""
    pieces = fragment_pieces(mol, max_cuts)
    piece, shift = _ions(pieces, max_cuts, h_shifts)
    counts = pieces.counts[piece].copy()
    counts[:, pieces.elements.index("H")] += shift
    mz = pieces.mass[piece] + shift
    # simplest source first: fewest cuts, smallest |shift|, the negative shift
    order = np.lexsort((shift, np.abs(shift), pieces.n_cuts[piece]))
    piece, shift, counts, mz = piece[order], shift[order], counts[order], mz[order]
    keys = np.concatenate([mz[:, None], counts], axis=1)
    unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    sources: list[list[tuple[tuple[int, ...], int]]] = [[] for _ in range(len(unique))]
    for k, (p, s) in enumerate(zip(piece.tolist(), shift.tolist())):
        sources[inverse[k]].append((pieces.cuts[p], s))
    formula = [hill_formula(dict(zip(pieces.elements, row[1:].tolist()))) for row in unique]
    # np.unique sorts by m/z, then by the element counts; sort by m/z then formula for a readable order
    rank = sorted(range(len(unique)), key=lambda u: (int(unique[u, 0]), formula[u]))
    best = first[rank]
    return Fragments([formula[u] for u in rank], unique[rank, 0].astype(np.int64),
                     pieces.n_cuts[piece[best]].astype(np.int8), shift[best].astype(np.int8),
                     [pieces.cuts[p] for p in piece[best].tolist()],
                     [pieces.nodes[pieces.atoms[p]] for p in piece[best].tolist()],
                     [sources[u] for u in rank], pieces)
