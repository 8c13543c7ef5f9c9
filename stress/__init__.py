"""Reliability suites R1-R6 of quality.md §2 (`make stress`, `python -m stress.run`)."""
