"""Determinism: the session study's numbers are those committed in tests/data/e2e_digest.tsv.gz. Every metric,
prediction, paired test, out-of-fold prediction, deep score and locked-bundle number of a fresh `snakemake` run of
helpers.STUDY (three endpoints, deep and fusion models) must equal the digest, so a refactoring proves it changed
no result and a run that is not deterministic fails here. The deep network's numbers (and the fusion models fed by
them) are reproducible on one machine only: torch chooses CPU kernels by instruction set, so they are compared by
presence (tests/test_deep.py checks two CPU runs byte for byte). Regenerate the digest only for a change meant to
alter results, from a run of helpers.STUDY (`python tests/study_digest.py RESULTS/e2e tests/data/e2e_digest.tsv.gz`),
and say so in the CHANGELOG. A second run killed part-way and resumed, byte-identical in stage 1, is
tests/test_faults.py's injected-faults study."""
from __future__ import annotations

import pytest
import study_digest
from helpers import REPO

pytestmark = pytest.mark.e2e
DIGEST = REPO / "tests" / "data" / "e2e_digest.tsv.gz"
# Same machine: identical to the last digit. Another CPU may differ in the last bits of BLAS sums.
ATOL = 1e-9


def test_the_session_study_reproduces_the_committed_digest(study):
    expected = study_digest.read(DIGEST)
    actual = study_digest.digest(study)
    deep = study_digest.machine_dependent(expected)
    assert 0 < deep.sum() < len(expected) / 2
    problems = study_digest.compare(expected[~deep], actual[~study_digest.machine_dependent(actual)], ATOL)
    exact = len(study_digest.compare(expected, actual, 0.0))
    files = [set(d.loc[study_digest.machine_dependent(d), "file"]) for d in (expected, actual)]
    print(f"{len(expected)} numbers compared ({int(deep.sum())} of the deep network by presence only); "
          f"{exact} not bit-identical after rounding to 1e-12")
    assert not problems, f"{len(problems)} differences, e.g.:\n" + "\n".join(problems[:20])
    assert files[0] == files[1], "the deep network's files differ from the digest's"
