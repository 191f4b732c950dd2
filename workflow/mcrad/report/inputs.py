"""What the report may read: exactly the files its rule declares as inputs, through the loaders the stages use
(tables, JSON, bundles verified against their manifests). Reading anything else is a bug of the rule and
stops the report with a message naming the file."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from mcrad.errors import McradError
from mcrad.files import read_table
from mcrad.paths import Paths


class ReportInputs:
    def __init__(self, root: Path, declared: Iterable[str | Path]):
        self.paths = Paths(Path(root))
        self._declared = {Path(p).resolve() for p in declared}

    def _check(self, path: Path) -> Path:
        resolved = Path(path).resolve()
        if resolved in self._declared or any(d in resolved.parents for d in self._declared):
            return resolved
        raise McradError(f"the report reads {path}, which the report rule does not declare as an input. Fix: add it "
                         "to the rule's inputs (workflow/rules/report.smk).")

    def has(self, path: Path) -> bool:
        """Declared and present (optional outputs: a section appears only for what the study ran)."""
        resolved = Path(path).resolve()
        return (resolved in self._declared or any(d in resolved.parents for d in self._declared)) \
            and resolved.exists()

    def table(self, path: Path) -> pd.DataFrame:
        return read_table(self._check(path))

    def json(self, path: Path) -> Any:
        return json.loads(self._check(path).read_text())

    def bytes(self, path: Path) -> bytes:
        return self._check(path).read_bytes()

    def files(self, folder: Path, pattern: str) -> list[Path]:
        """Files matching `pattern` in a declared folder, sorted."""
        return sorted(self._check(folder).glob(pattern))

    def declared_under(self, folder: Path) -> list[Path]:
        """The declared files inside `folder` (e.g. the benchmark files of the jobs the report depends on)."""
        folder = Path(folder).resolve()
        return sorted(p for p in self._declared if folder in p.parents and p.is_file())

    def bundle(self, endpoint: str, model: str) -> tuple[dict, dict]:
        """(meta.json, manifest) of a locked bundle, verified against its manifest."""
        from mcrad.model.bundle import load_meta

        for f in self.paths.bundle_files(endpoint, model):
            self._check(f)
        return load_meta(self.paths.bundle(endpoint, model))
