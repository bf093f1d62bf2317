"""Synthetic multi-site SZ003 screening studies: realistic site deliveries with planted problems.

`generate()` writes every site's deliveries (DTS v1 layout, manifests last) and a
`ground_truth.json` that lists each planted problem and what the audit must report for it.
Used by `screening-audit demo`, the test suite and the benchmarks. See docs/generator.md.
"""

from generator.generate import GenerationSummary, generate

__all__ = ["GenerationSummary", "generate"]
