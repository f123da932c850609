"""Stage 4, backtest: how often does price reach the predicted liquidation clusters? (pure, no I/O)

Modules: ``stats`` (bootstrap, correlations), ``cases`` (evaluation points, price paths, scored
cases), ``summary`` (rates, lifts, intervals), ``nulls`` (placebo and naive levels), ``predict`` (clusters per point and per window), ``realized`` (realized vs
modelled liquidations), ``variants`` (alternative parameters and the default rule), ``market``
(one market end to end). Loading a market from the store is :mod:`pipeline.steps.backtest`.

No vendor of liquidation heatmaps publishes this, so liqmap measures it and
publishes the figures with their uncertainty.

Method
------
*Evaluation points.* Every ``step`` (default one hour; widened to whole hours
when a long history would exceed ``max_eval_points``) after a warm-up, the
model's book as it stood at that moment (only candles that opened before it)
is binned on a fixed geometric lattice around the point's own price (the
lattice does not depend on the data, so no bin edge knows the future), and the
top ``k`` clusters on each side are found as the key-levels tables find them
(:mod:`.predict`).

*Touch.* A cluster above price is hit within horizon ``H`` (4 h, 24 h, 72 h)
when a later candle's high reaches its near edge; below price, when a later low
does. Points whose horizon runs past the data are skipped, never misses.

*Baseline, fair to volatility* (:mod:`.cases`). Distances are measured in
units of the trailing 24 h realised volatility. A cluster's baseline is the
share of the *other* evaluation points at which price moved at least as many
volatility units the same way within the horizon; points whose horizon
overlaps the cluster's are purged. Lift = hits / baseline-expected hits.

*Intervals* (:mod:`.stats`, :mod:`.summary`). A block bootstrap over days
(blocks at least one horizon long) resamples whole evaluation points together
with the reference points of their baseline; too few blocks give no interval.

*Comparators* (:mod:`.nulls`). A placebo, the same pipeline with the open
interest increments shuffled in whole-day blocks (several permutations,
pooled), and naive levels: the recent swing high/low and round numbers at the
distance nearest each cluster. The headline is model vs placebo vs naive.

*Windows and confluence.* Each timeframe window's clusters are rebinned from
one fine lattice to the window's own edges (:mod:`pipeline.model.windows`)
and scored as drawn; confluence uses :func:`pipeline.model.levels.overlaps`.

*Realized liquidations* (:mod:`.realized`; where an exchange publishes them):
modelled vs realized notional per hour, against an activity baseline (gross OI
churn) and a random-level baseline.

*Variants* (:mod:`.variants`, ``liqmap backtest --variants`` only): side split
x leverage mix x fade, chosen on the earlier half of the history and reported
on the later half, never in-sample.
"""
