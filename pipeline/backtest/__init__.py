"""Stage 4, backtest: how often price reached the model's clusters (pure, no I/O)."""
