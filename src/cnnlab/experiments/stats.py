"""Seed-to-seed statistics: mean, sample std, and Welch's t-test, without scipy.

A variant differs "beyond the noise" when Welch's two-sided t-test on its
per-seed values against the base's gives p < ALPHA. Welch's test does not
assume equal variances; it needs at least 2 values on each side.

    >>> d = welch([0.91, 0.912, 0.909], [0.90, 0.901, 0.899])
    >>> d.diff, d.se, d.p, d.significant        # doctest: +SKIP
    (0.0103..., 0.0011..., 0.0019..., True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05  # two-sided significance level of the "beyond the noise" mark
INCONCLUSIVE = 2.0  # |difference| / noise above which a non-significant result asks for seeds
RULE = ("Welch's two-sided t-test on the per-seed values, p < 0.05 (marked *): 'beyond the "
        "noise'. The noise shown as ± is the standard error of the difference, "
        "sqrt(s_a²/n_a + s_b²/n_b). A difference over 2x its noise that does not reach "
        "p < 0.05 is called 'inconclusive' (marked ?): with few seeds the test needs a much larger "
        "multiple (about 4.3x with 2 seeds per side, 2.8x with 3), so more seeds would tell. "
        "With 1 seed on either side there is no noise estimate.")


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else math.nan


def std(xs) -> float:
    """Sample standard deviation (n - 1); nan with fewer than 2 values."""
    xs = list(xs)
    if len(xs) < 2:
        return math.nan
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df (> 0, may be fractional) degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_critical(df: float, alpha: float = ALPHA) -> float:
    """The |t| at which the two-sided p equals alpha (bisection on t_two_sided_p)."""
    lo, hi = 0.0, 1.0
    while t_two_sided_p(hi, df) > alpha:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_two_sided_p(mid, df) > alpha else (lo, mid)
    return (lo + hi) / 2.0


@dataclass(frozen=True)
class Difference:
    """b - a (variant minus base) with its noise; p and df are nan without a noise estimate."""

    diff: float
    se: float
    df: float
    p: float
    note: str = ""          # why there is no test, if there is none

    @property
    def tested(self) -> bool:
        return not math.isnan(self.p)

    @property
    def significant(self) -> bool:
        return self.tested and self.p < ALPHA

    @property
    def ratio(self) -> float:
        """|difference| in units of its noise (nan without a noise estimate)."""
        return abs(self.diff) / self.se if self.tested else math.nan

    @property
    def inconclusive(self) -> bool:
        """Not significant, yet more than INCONCLUSIVE times the noise: more seeds would tell."""
        return self.tested and not self.significant and self.ratio > INCONCLUSIVE

    @property
    def verdict(self) -> str:
        if not self.tested:
            return self.note
        if self.significant:
            return "beyond the noise"
        if self.inconclusive:
            return (f"inconclusive: {self.ratio:.1f}x the noise, but p < {ALPHA} would need "
                    f"{t_critical(self.df):.1f}x with these seeds; add seeds")
        return "within the noise"


def welch(a, b) -> Difference:
    """Welch's t-test of mean(b) - mean(a); a is the base's per-seed values."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    if not a or not b:
        return Difference(math.nan, math.nan, math.nan, math.nan, "no finished runs")
    diff = mean(b) - mean(a)
    if len(a) < 2 or len(b) < 2:
        return Difference(diff, math.nan, math.nan, math.nan,
                          f"no noise estimate: {min(len(a), len(b))} seed")
    va, vb = std(a) ** 2 / len(a), std(b) ** 2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Difference(diff, 0.0, math.nan, math.nan,
                          "no noise estimate: every seed gave the same value")
    # Welch-Satterthwaite degrees of freedom
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return Difference(diff, se, df, t_two_sided_p(diff / se, df))
