"""One module per pipeline phase; each exposes `run(cfg) -> dict[str, float]`."""
