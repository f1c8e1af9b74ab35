"""Paired A/B statistics for the bench scripts: the cost of B relative to A, measured in runs that
were interleaved (A and B of one repetition ran back to back), with a distribution-free
confidence interval for its median.

Why paired: this machine's load drifts by tens of percent over minutes, so the min-max ranges of
A and of B overlap even when B is consistently dearer. The ratio of two adjacent runs cancels most
of the drift; its median over repetitions, with an interval from order statistics (the sign test:
no assumption about the distribution), says whether a goal is met, missed, or not resolvable yet.
"""

import math
import statistics

CONFIDENCE = 0.95


def _binomial_cdf(k, n):
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


def median_interval(values, confidence=CONFIDENCE):
    """(low, high, coverage): the order-statistic interval [x_(k), x_(n+1-k)] around the median
    with the largest k whose coverage is still >= confidence. With too few values for that
    (n < 6 at 95%) it is [min, max], and `coverage` says how much less it covers."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no values")
    k = 1
    while k + 1 <= n // 2 and 1 - 2 * _binomial_cdf(k, n) >= confidence:
        k += 1
    coverage = 1 - 2 * _binomial_cdf(k - 1, n)
    return ordered[k - 1], ordered[n - k], coverage


def paired_ratios(base, other):
    """other / base, run by run (None for a failed run, whose pair is dropped)."""
    return [b / a for a, b in zip(base, other) if a is not None and b is not None and a > 0]


def paired_costs(base, other, higher_is_better):
    """Relative cost of `other` against `base`, run by run (lists in repetition order, None for a
    failed run, whose pair is dropped): for a rate, how much lower; for a cost, how much higher."""
    return [1 - r if higher_is_better else r - 1 for r in paired_ratios(base, other)]


def interval_text(values, shown=lambda v: f"{v:.3f}"):
    """The median of paired values with its order-statistic interval, as one phrase (no goal):
    for an A/B where the question is whether the interval includes no change."""
    low, high, coverage = median_interval(values)
    return (f"{shown(statistics.median(values))}, {coverage:.0%} interval [{shown(low)}, {shown(high)}] "
            f"over {len(values)} pairs")


def verdict(costs, limit, name="cost", shown=lambda v: f"{v:+.1%}", goal=lambda v: f"{v:.0%}"):
    """(text, median, low, high): MET when the interval's upper end is within the limit, MISSED when
    its lower end is beyond it, otherwise UNRESOLVED (more runs would narrow it), and always
    UNRESOLVED when there are too few pairs for the interval to reach CONFIDENCE. `shown` and
    `goal` format the values (default: costs as signed percentages)."""
    low, high, coverage = median_interval(costs)
    middle = statistics.median(costs)
    if coverage < CONFIDENCE:
        word = f"UNRESOLVED (too few pairs for a {CONFIDENCE:.0%} interval)"
    elif high <= limit:
        word = "MET"
    elif low > limit:
        word = "MISSED"
    else:
        word = "UNRESOLVED"
    text = (f"{name} {shown(middle)}, {coverage:.0%} interval [{shown(low)}, {shown(high)}] over {len(costs)} "
            f"pairs (goal <= {goal(limit)})  {word}")
    return text, middle, low, high


if __name__ == "__main__":
    # Self-check of the interval against values worked out by hand.
    assert median_interval([1, 2, 3, 4, 5])[:2] == (1, 5)  # n=5: min-max, coverage 93.75%
    assert abs(median_interval([1, 2, 3, 4, 5])[2] - 0.9375) < 1e-12
    low, high, coverage = median_interval(list(range(1, 16)))  # n=15: x4..x12, coverage 96.5%
    assert (low, high) == (4, 12) and abs(coverage - 0.96484375) < 1e-9, (low, high, coverage)
    assert paired_costs([10, None, 20], [11, 5, 18], higher_is_better=False) == [11 / 10 - 1, 18 / 20 - 1]
    assert paired_costs([10, 20], [9, 21], higher_is_better=True) == [1 - 9 / 10, 1 - 21 / 20]
    assert verdict([0.001] * 8, 0.02)[0].endswith("MET")
    assert paired_ratios([10, None, 20, 0], [8, 5, 18, 3]) == [0.8, 0.9]
    assert verdict([0.7] * 6 + [0.9] * 2, 0.8, "ratio", lambda v: f"{v:.2f}x", lambda v: f"{v:.2f}x")[0] \
        .startswith("ratio 0.70x")
    assert "UNRESOLVED" in verdict([0.001] * 5, 0.02)[0]  # 93.75% < 95%
    assert verdict([0.05] * 8, 0.02)[0].endswith("MISSED")
    assert verdict([-0.05, 0.0, 0.01, 0.03, 0.04, 0.05, 0.06, 0.07], 0.02)[0].endswith("UNRESOLVED")
    assert interval_text([1.0, 2.0, 3.0, 4.0, 5.0], lambda v: f"{v:.1f}") == \
        "3.0, 94% interval [1.0, 5.0] over 5 pairs"
    print("pairstats: self-check ok")
