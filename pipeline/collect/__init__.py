"""Stage 1, collect: public exchange data over HTTP into the store.

``http`` is the one HTTP layer (retries, budgets, clear failures); ``exchanges/``
holds one small class per venue with its capability table; ``live`` runs the
incremental collection and the Binance archive backfill.
"""
