"""One audit at a time per study, and all-or-nothing publication of a night's reports (lock, staging,
promotion) over the storage interface. See docs/operations.md."""
