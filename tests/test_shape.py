"""The code's shape, kept by tests: lint clean, small modules, one owner per concept (endpoint types in
mcrad.endpoints, paths under results/ in mcrad.paths), and every benchmark script runnable at its smoke size."""
from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest
from helpers import REPO, SNAKEMAKE

PACKAGE = REPO / "workflow" / "mcrad"
SOURCES = sorted(PACKAGE.rglob("*.py"))
RULES = sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "Snakefile"]
BIN = SNAKEMAKE.parent


def _results_folders() -> set[str]:
    """The top-level folders of a study's results, read from Paths (`self.root / "<folder>"`)."""
    return set(re.findall(r'self\.root / "(\w+)"', (PACKAGE / "paths.py").read_text()))


def test_ruff_is_clean():
    proc = subprocess.run([str(BIN / "ruff"), "check", "workflow", "tests", "benchmarks"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.e2e
def test_snakemake_lint_is_clean():
    proc = subprocess.run([str(SNAKEMAKE), "--lint", "--cores", "1"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_no_module_over_500_lines():
    long = {str(f.relative_to(PACKAGE)): n for f in SOURCES if (n := len(f.read_text().splitlines())) > 500}
    assert not long, f"split these modules by concern: {long}"


def test_endpoint_types_are_switched_on_only_in_the_endpoint_module():
    pattern = re.compile(r"""(\[["']type["']\]|\.get\(["']type["'][^)]*\)|\bkind\b|\btype\b)\s*[!=]=\s*["']"""
                         r"""(binary|multiclass|survival)["']|["'](binary|multiclass|survival)["']\s*[!=]=""")
    found = [f"{f.relative_to(REPO)}:{i}: {line.strip()}" for f in [*SOURCES, *RULES]
             if f.name != "endpoints.py" for i, line in enumerate(f.read_text().splitlines(), 1)
             if pattern.search(line) or re.search(r"isinstance\([^)]*\b(Binary|Multiclass|Survival)\b", line)]
    assert not found, "ask the Endpoint object instead:\n" + "\n".join(found)


def test_paths_under_results_are_built_only_by_paths():
    """No `... / "models"` or "validation/..." outside mcrad/paths.py: one path contract, used by rules and stages."""
    folders = _results_folders()
    assert {"cases", "models", "validation", "report", "qc"} <= folders

    def offending(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value  # a path has no spaces: help texts and docstrings that name a file are not paths
            return " " not in text and text.split("/")[0] in folders and "/" in text.strip("/")
        return False

    found = []
    for f in SOURCES:
        if f.name == "paths.py" or f.relative_to(PACKAGE).as_posix() == "kit/layout.py":  # the kit mirrors results/
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            joined = isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and any(
                isinstance(s, ast.Constant) and s.value in folders for s in (node.left, node.right))
            if joined or offending(node):
                found.append(f"{f.relative_to(REPO)}:{node.lineno}")
    in_rules = re.compile("[\"'](" + "|".join(sorted(folders)) + ")/")
    for f in RULES:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if in_rules.search(line) and "PATHS.log" not in line:
                found.append(f"{f.relative_to(REPO)}:{i}: {line.strip()}")
    assert not found, "build these with mcrad.paths.Paths:\n" + "\n".join(found)


BENCHMARKS = sorted(p.name for p in (REPO / "benchmarks").iterdir() if p.suffix in (".py", ".sh"))


@pytest.mark.e2e
@pytest.mark.parametrize("script", BENCHMARKS)
def test_benchmark_runs_at_its_smoke_size(script, tmp_path):
    """Each benchmark has a --smoke size the suite runs, so none rots; the real sizes are run by hand."""
    path = REPO / "benchmarks" / script
    cmd = [sys.executable, str(path)] if script.endswith(".py") else ["bash", str(path)]
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    proc = subprocess.run([*cmd, "--smoke"], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert proc.stdout.strip(), "a benchmark prints its figures"
