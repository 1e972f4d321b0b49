"""The distributions in the reports of the benchmarks, the demo and the
end-to-end tests: one definition of each for every script."""

import statistics


def percentile(values, p):
    """The P-th percentile of VALUES by nearest rank: one of VALUES"""
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def dist(values, percentiles=(90,)):
    """n, min, median, each of PERCENTILES (key "pNN") and max of VALUES,
    or None when there are none"""
    if not values:
        return None
    d = {"n": len(values), "min": min(values),
         "median": statistics.median(values)}
    d.update((f"p{p}", percentile(values, p)) for p in percentiles)
    d["max"] = max(values)
    return d


def median_cell(values, scale=1.0, fmt="{:.1f}", empty="-"):
    """A table cell: the median of VALUES (Nones left out) divided by
    SCALE, or EMPTY when there is none"""
    values = [v for v in values if v is not None]
    if not values:
        return empty
    return fmt.format(statistics.median(values) / scale)
