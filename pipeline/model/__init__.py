"""Stage 3, model: pure numpy from market arrays to level books, clusters and views.

Nothing here reads or writes files, the network or the store.
"""
