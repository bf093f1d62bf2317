"""review: the sponsor's review of the audit's findings, kept in an append-only ledger (docs/review.md)."""
