"""Background workers: outbound sender and tracker, webhook dispatcher, connection scheduler."""
