"""One module per connector; each exposes make_harness() (see tests/contract/harness.py)."""
