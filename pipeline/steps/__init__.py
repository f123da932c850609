"""The build's steps, each in one shape: load inputs -> process (pure stages) -> save outputs.

``compute`` (store -> views and backtests), ``backtest`` (one asset's backtest from
the store), ``charts`` (specs -> JSON files), ``snapshots`` (views -> gated
snapshot folders), ``pages`` (contexts -> Markdown pages), ``docs`` (the
generated docs dir and MkDocs). :mod:`pipeline.build` runs them in order.
"""
