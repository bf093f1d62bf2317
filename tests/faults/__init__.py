"""Fault injection for tests: an HTTP proxy in front of the moto S3 server that fails chosen requests.

Tests import it as `faults` (pytest puts tests/ on sys.path, as for `test_ingestion_support`).
"""

from .proxy import Action, FaultProxy, Rule, S3Request

__all__ = ["Action", "FaultProxy", "Rule", "S3Request"]
