"""Stage 4, backtest: how often does price reach the predicted liquidation clusters? (pure, no I/O)

Modules: ``stats`` (intervals, correlations), ``cases`` (evaluation points, price paths, scored
cases, summaries), ``predict`` (clusters per point and per window), ``realized`` (realized vs
modelled liquidations), ``variants`` (alternative parameters and the default rule), ``market``
(one market end to end). Loading a market from the store is :mod:`pipeline.steps.backtest`.

No vendor of liquidation heatmaps publishes this, so liqmap measures it and
publishes the figures with their uncertainty.

Method
------
*Evaluation points.* Every ``step`` (default one hour; widened to whole hours
when a long history would exceed ``max_eval_points``) after a warm-up (default
6 h, so the book has filled), the model's active level book is taken as it
stood at that moment (the grid column ending at the point: only candles that
opened before it, so nothing from the future leaks in), cut to +/- 15 % of
price in 400 bins of equal width *in %* (geometric edges, so the resolution
does not drift with the price level; 15 % is the site's padding for its
1-month window), and :func:`pipeline.levels.find_clusters` ranks the clusters
above price (short liquidations) and below price (long liquidations). The top
``k`` (default 3) clusters on each side are scored. The reference price is the
close of the last candle before the point.

*Touch.* A cluster **above** price is hit within horizon ``H`` (4 h, 24 h, 72 h)
when the highest high of the candles opening in ``[t, t + H)`` reaches the
cluster's ``price_low`` (its near edge); a cluster **below** price is hit when
the lowest low reaches its ``price_high``. Points whose horizon runs past the
end of the data are skipped for that horizon (never counted as misses).

*Baseline (the principled part).* Near levels are hit more often for trivial
reasons, and only the near edge of a cluster matters for a touch. A level at
the *same* signed near-edge distance at the *same* time would be hit exactly
when the cluster is (the test is a function of that distance alone), so it
cannot serve as a baseline; a mirror level on the other side confounds the
comparison with the sample's trend. liqmap's baseline is therefore
**distance-, side- and horizon-matched, time-randomised**: for a cluster whose
near edge is ``d`` % above price, the baseline is the fraction of *all other*
evaluation points at which price rose by at least ``d`` % within the same
horizon (likewise below). It is the touch probability of an arbitrary level at
that distance in this very sample, so it absorbs the sample's volatility and
drift; lift = hit rate / baseline rate then measures only what the model adds
by *where and when* it puts its clusters. Lift near 1 means the clusters are
no better than any level at the same distance; above 1, price visits the
model's clusters more often than chance.

*Uncertainty.* Rates carry Wilson 95 % score intervals. Hourly points with
24 h or 72 h horizons overlap heavily and the ``k`` clusters of one point are
correlated, so cases are not independent. Every row also states an effective
independent-case count ``n_eff = cases / (horizon / step)`` and an interval
computed with it (wider, more honest). Rows with fewer than ``min_cases``
cases are reported as skipped, not as noisy numbers.

*Windows and confluence.* The site draws each timeframe window from one model
run with its own price axis (window low/high plus a padding, linear bins).
:func:`window_clusters` reproduces that at (up to ``window_max_points``, evenly
spread) evaluation points, so each window's clusters are backtested as drawn
(``by_timeframe``). A cluster's confluence is the number of *other* windows
with an overlapping same-side cluster (strict overlap, as
``levels.Cluster.overlaps``); the widest window's clusters are bucketed by it
(0, 1, 2+) and compared with the same baseline.

*Realized liquidations* (where an exchange publishes them, e.g. OKX): modelled
vs realized liquidation notional per hour (Pearson and Spearman correlation)
and the share of realized notional that occurred within +/- x % of a cluster
predicted beforehand on the matching side.

*Variants.* :func:`run_variants` backtests side_split (equal / taker / candle;
taker only where taker-buy volume exists) x leverage mix (registry / tilted to
low / tilted to high leverage) x fade (none / 24 h / 72 h half-life) and ranks
them by :data:`SCORE_TEXT`; the registry default is only replaced when a
variant's whole dependence-adjusted interval clears it.
"""
