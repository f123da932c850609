"""One small class per venue (``binance``, ``bybit``, ...) on the shared pieces of ``base``."""
