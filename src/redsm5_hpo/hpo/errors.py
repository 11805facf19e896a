"""Errors of the study as a whole."""


class StudyError(RuntimeError):
    """The study cannot produce its report (no completed trial, best checkpoint gone)."""
