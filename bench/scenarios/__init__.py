"""The benchmark scenarios B1-B8 of quality.md §1, one module per kind of measurement."""
