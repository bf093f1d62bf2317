"""The benchmark's CPU seconds per stage (benchmarks.run.span_cpu): from the samples around a stage."""

from datetime import UTC, datetime, timedelta

from benchmarks.run import span_cpu

T0 = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


SAMPLES = [(at(0), 1, 0.0), (at(50), 1, 0.1), (at(100), 1, 0.2), (at(150), 1, 0.35), (at(200), 1, 0.5)]


def test_a_stage_counts_from_the_last_sample_before_it_to_the_first_after_it():
    assert span_cpu(SAMPLES, at(60), at(140)) == 0.35 - 0.1
    assert span_cpu(SAMPLES, at(50), at(150)) == 0.35 - 0.1  # a sample at the very edge is the edge


def test_a_stage_outside_the_samples_has_no_figure():
    assert span_cpu(SAMPLES, at(-10), at(100)) is None
    assert span_cpu(SAMPLES, at(10), at(250)) is None
