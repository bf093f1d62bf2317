"""Clean values at the edge of a protocol threshold: exactly at an inclusive limit, or 1-2 % from it.

A real study has platelets of 61 and haemoglobin of 9.0, and sites that write them as 61000 /uL or
5.6 mmol/L: the audit must convert and round without turning a clean subject ineligible. This
module moves a share of the clean subjects' latent values to such places (study.yaml `near_limits`)
and checks each one the way a reader of the delivered file would: the value the site writes (its
unit, its lab's rounding, `render_measures`) is converted back with measures.yaml's factor and must
still keep its clean relation to the limit; otherwise the drawn value is kept. Everything here is
the generator's own arithmetic (measures.yaml), never the audit's.
"""

from __future__ import annotations

import operator

import numpy as np
import polars as pl

from generator.config import Config, NearLimit
from generator.render import render_measures

_RELATIONS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def _read_back(values: np.ndarray, measure: str, units: np.ndarray, cfg: Config) -> np.ndarray:
    """What a reader gets back, in the protocol unit, from the text the site writes for `values` (NaN
    when the text is censored `<x`)."""
    written = render_measures(pl.DataFrame({"UNITS": units, "MEASURE": [measure] * len(values), "VALUE": values}),
                              cfg)
    number = written["ORRES"].cast(pl.Float64, strict=False).fill_null(float("nan")).to_numpy()
    unit = written["ORRESU"].to_list()
    spec = cfg.measures[measure].units
    factor = np.array([spec[u].factor for u in unit])
    transform = np.array([spec[u].transform for u in unit])
    with np.errstate(over="ignore", invalid="ignore"):  # every branch is computed; only the chosen one counts
        return np.select([transform == "log10", transform == "ifcc", transform == "fahrenheit"],
                         [10.0 ** number, number * 0.09148 + 2.152, (number - 32.0) * 5.0 / 9.0],
                         number / factor)


def _targets(rule: NearLimit, count: int, rng: np.random.Generator, cfg: Config) -> np.ndarray:
    settings = cfg.study.near_limits
    away = 1.0 if rule.clean in (">=", ">") else -1.0
    margin = rule.limit * (1.0 + away * rng.uniform(settings.margin[0], settings.margin[1], count))
    exact = (rng.random(count) < settings.exact_share) & (rule.clean in (">=", "<="))
    return np.where(exact, rule.limit, margin)


def place_near_limits(cols: dict[str, np.ndarray], units: np.ndarray, eligible: np.ndarray,
                      rng: np.random.Generator, cfg: Config) -> np.ndarray:
    """Move a share of the `eligible` subjects' latent values (in `cols`, in place) to a threshold.

    Returns, per subject, the latent column moved ("" for none): each chosen subject gets one, among
    the limits whose `when` holds for it.
    """
    settings = cfg.study.near_limits
    names = list(settings.limits)
    n = len(units)
    moved = np.full(n, "", dtype=object)
    chosen = eligible & (rng.random(n) < settings.share)
    pick = rng.integers(0, len(names), n)
    for k, name in enumerate(names):
        rule = settings.limits[name]
        who = chosen & (pick == k)
        if rule.when is not None:
            who &= cols[rule.when].astype(bool)
        index = np.flatnonzero(who)
        if index.size == 0:
            continue
        targets = _targets(rule, index.size, rng, cfg)
        back = _read_back(targets, rule.measure or name, units[index], cfg)
        keep = _RELATIONS[rule.clean](back, rule.limit) & ~np.isnan(back)
        cols[name][index[keep]] = targets[keep]
        moved[index[keep]] = name
    return moved
