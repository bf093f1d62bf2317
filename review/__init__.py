"""review: the sponsor's review of the audit's findings (docs/review.md).

An append-only ledger of actions under `<reports>/<STUDY>/_review/` (review.ledger), the state machine
that says which action is allowed when (review/states.yaml, review.machine), the fold of the ledger
into each finding's state (review.fold), returned workbooks (review.workbook, review.imports,
review.inbox), what a night does with all of it (review.night) and what the `screening-audit review`
commands do (review.commands). Between publication and reporting: it reads and writes the reports
store, and reporting shows what it says.
"""

from review.ledger import LedgerIntegrityError, read_ledger
from review.machine import StateMachine, load_machine
from review.night import review_night

__all__ = ["LedgerIntegrityError", "StateMachine", "load_machine", "read_ledger", "review_night"]
