"""One module per connector; each exposes make_harness() (see erphub/testing/harness.py)."""
