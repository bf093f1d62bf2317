"""The benchmark's --repeat (benchmarks.run.median_run): the median run stands for the case."""

from benchmarks.run import Case, Measure, median_run

DIRTY = Case("dirty", 100, 10_000, profile="dirty", publish_within_ingest=True)
S100 = Case("s100", 100, 10_000, max_floor_ratio=4)


def run(publish: float, ingest: float, wall: float = 20.0, floor: float = 2.0) -> Measure:
    return Measure("dirty", 100, 10_000, wall_s=wall, floor_s=floor,
                   stages={"list-sites": 0.0, "ingest": ingest, "publish": publish})


def test_the_median_of_publish_over_ingestion_is_kept_with_every_run():
    runs = [run(2.2, 2.0), run(1.6, 2.0), run(1.9, 2.0), run(2.1, 2.0), run(1.0, 2.0)]
    chosen = median_run(DIRTY, runs)
    assert chosen is runs[2]  # 0.95: two runs below it, two above
    assert [r["publish_share"] for r in chosen.repeats] == [1.1, 0.8, 0.95, 1.05, 0.5]
    assert chosen.checks[-1] == "ok median of 5 runs: publish / ingestion 0.95 (from 0.50 to 1.10, met by 3 of 5)"


def test_an_even_count_keeps_the_lower_median_and_a_miss_says_so():
    runs = [run(2.4, 2.0), run(2.2, 2.0)]
    chosen = median_run(DIRTY, runs)
    assert chosen is runs[1]
    assert chosen.checks[-1].startswith("MISS median of 2 runs: publish / ingestion 1.10")


def test_other_cases_take_the_median_ratio_to_the_floor_and_one_run_adds_no_line():
    runs = [run(1, 1, wall=30.0), run(1, 1, wall=10.0), run(1, 1, wall=20.0)]
    chosen = median_run(S100, runs)
    assert chosen is runs[2]
    assert chosen.checks[-1] == "MISS median of 3 runs: wall / floor 10.00 (from 5.00 to 15.00, met by 0 of 3)"
    single = run(1, 1)
    assert median_run(S100, [single]).checks == [] and len(single.repeats) == 1


def test_a_failed_run_ranks_last_and_is_named():
    failed = Measure("dirty", 100, 10_000, wall_s=3.0, floor_s=2.0, exit_code=1, stages={})
    runs = [run(2.0, 2.0), failed, run(1.0, 2.0)]
    chosen = median_run(DIRTY, runs)
    assert chosen is runs[0]  # 0.5, 1.0, then the failed run (no figure)
    assert chosen.checks[-1] == "FAIL 1 of 3 runs exited with an error (see the case's log)"
