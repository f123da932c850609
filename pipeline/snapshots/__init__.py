"""Stage 6, publish: dated immutable snapshots (``files``) and the sanity gate (``gate``)."""
