"""Stage 2, store: the DuckDB cache, its Parquet history, the bundled sample and user files.

``db`` opens the store and runs the SQL files of ``sql/``; ``history`` writes and
restores the Parquet partitions that outlive a run; ``sample`` loads the bundled
real sample; ``userfiles`` reads and writes the files ``liqmap compute`` takes.
"""
