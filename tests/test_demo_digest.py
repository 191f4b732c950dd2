"""The demo study's numbers are those committed in tests/data/demo_digest.tsv.gz (made from the demo before the
issue-16 refactoring): a fresh `snakemake` run of config/config.yaml must reproduce every metric, prediction,
prospective score and locked-bundle number. The deep network's numbers (and the fusion models fed by them) are
reproducible on one machine only (tests/test_reproducibility.py checks that): torch chooses CPU kernels by
instruction set. Here their files must all be there. Regenerate the digest only for a change meant to alter results:
`python tests/demo_digest.py results/demo tests/data/demo_digest.tsv.gz` from a demo run with the two costly
guardrails off (as below), and say so in the CHANGELOG. The negative controls and the y-randomisation (together
about as long as the rest of the demo) are left out here: tests/test_controls.py and tests/test_nulls.py run them."""
from __future__ import annotations

import os
import subprocess

import demo_digest
import pytest
import yaml
from helpers import REPO, SNAKEMAKE

pytestmark = [pytest.mark.e2e, pytest.mark.demo]
DIGEST = REPO / "tests" / "data" / "demo_digest.tsv.gz"
# Same machine: identical to the last digit. Another CPU may differ in the last bits of BLAS sums.
ATOL = 1e-9


def test_fresh_demo_run_reproduces_the_committed_digest(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["study"]["results"] = str(tmp_path / "results")
    cfg["negative_controls"]["activate"] = False
    cfg["guardrails"]["y_randomisation"]["activate"] = False
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([str(SNAKEMAKE), "--cores", "2", "--configfile", str(tmp_path / "config.yaml")],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert proc.returncode == 0, proc.stderr[-5000:]
    expected = demo_digest.read(DIGEST)
    actual = demo_digest.digest(tmp_path / "results" / cfg["study"]["name"])
    deep = demo_digest.machine_dependent(expected)
    assert 0 < deep.sum() < len(expected) / 2
    problems = demo_digest.compare(expected[~deep], actual[~demo_digest.machine_dependent(actual)], ATOL)
    exact = len(demo_digest.compare(expected, actual, 0.0))
    files = [set(d.loc[demo_digest.machine_dependent(d), "file"]) for d in (expected, actual)]
    print(f"{len(expected)} numbers compared ({int(deep.sum())} of the deep network by presence only); "
          f"{exact} not bit-identical after rounding to 1e-12")
    assert not problems, f"{len(problems)} differences, e.g.:\n" + "\n".join(problems[:20])
    assert files[0] == files[1], "the deep network's files differ from the digest's"
