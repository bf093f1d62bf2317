"""Exceptions that carry a finding code: raised deep in a reader, turned into a finding by the caller."""

from __future__ import annotations

from ingestion.codes import Code


class IngestProblem(Exception):
    """A problem with a file or a manifest, described for the site (no record contents).

    `detail` completes the sentence "site S, file F: ..." and names rows or lines where known;
    `variable` and `observed` fill the findings columns of the same names.
    """

    def __init__(self, code: Code, detail: str, *, variable: str | None = None,
                 observed: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.variable = variable
        self.observed = observed


class FileRejected(IngestProblem):
    """One file cannot be used; the rest of the delivery can."""


class ManifestProblem(IngestProblem):
    """The manifest cannot be trusted: the whole delivery is rejected."""
