"""Errors that tell a researcher which patient, which file and what to do."""
from __future__ import annotations


class McradError(Exception):
    """Base class: a problem with the user's input or configuration, reported without a traceback."""


class ConfigError(McradError):
    pass


class CohortError(McradError):
    pass


class CaseError(McradError):
    """A problem with one case. The study quarantines the case unless `study.strict` is set."""

    def __init__(self, patient_id: str, path: str | None, problem: str, fix: str):
        self.patient_id, self.path, self.problem, self.fix = patient_id, path, problem, fix
        where = f" (file: {path})" if path else ""
        super().__init__(f"patient {patient_id}{where}: {problem}. Fix: {fix}")
