"""The bench's per-class lines: the right queries in each class, recall and cosine computed over them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from nextims.bench import class_lines
from nextims.evaluation.novelty import compound_classes
from nextims.evaluation.split_eval import SplitScores


def test_compound_classes_tell_cl_br_from_other_halogens() -> None:
    classes = compound_classes(["CCl", "CF", "CBr", "CCN", "c1ccccc1"])
    assert classes["halogenated"].tolist() == [True, True, True, False, False]
    assert classes["Cl or Br"].tolist() == [True, False, True, False, False]
    assert classes["aromatic-only"].tolist() == [False, False, False, False, True]
    assert not classes["M > 500"].any()
    heavy = compound_classes(["Brc1cc(Br)c(Oc2c(Br)c(Br)c(Br)c(Br)c2Br)c(Br)c1Br", "ClC(Cl)(Cl)Cl"])
    assert heavy["M > 500"].tolist() == [True, False]  # a nonabromodiphenyl ether, nominal mass 872


def test_class_lines_score_each_class_over_its_queries() -> None:
    ctx = SimpleNamespace(data=SimpleNamespace(compound_smiles=["CCl", "CF", "CCN"]))
    # queries: two of CCl (ranks 1 and 20), one of CF (rank 3), one of CCN (rank 50)
    scores = {"m": SplitScores({}, np.array([1, 20, 3, 50]), np.array([0, 0, 1, 2]),
                               similarities={"cosine": np.array([0.9, 0.5, 0.4, 0.1])})}
    novel = np.array([False, True, False, False])
    lines = class_lines(ctx, scores, novel)
    recall = lines[:lines.index("per class, cosine (all queries | novel queries):")]
    cosine = lines[len(recall):]
    assert recall[0] == "per class, recall@10 (all queries | novel queries):"
    line = next(s for s in recall if s.strip().startswith("Cl or Br:"))
    assert "all (1 compounds, 2 queries): m=0.500" in line and "novel (1 compounds, 1 queries): m=0.000" in line
    line = next(s for s in recall if s.strip().startswith("halogenated:"))
    assert "all (2 compounds, 3 queries): m=0.667" in line
    line = next(s for s in cosine if s.strip().startswith("Cl or Br:"))
    assert "m=0.700" in line and "novel (1 compounds, 1 queries): m=0.500" in line
    assert "all (0 compounds, 0 queries): -" in next(s for s in cosine if s.strip().startswith("aromatic-only:"))
