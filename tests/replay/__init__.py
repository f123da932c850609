"""Local replay server for exchange protocols (tests only; loopback)."""
