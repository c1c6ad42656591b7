"""Runs the contract suite (`erphub.testing.contract`) over every harness in tests/contract/harnesses/.

`conftest.py` parametrises the `harness` fixture; the tests and their other fixtures come from the suite.
"""

from erphub.testing.contract import *  # noqa: F403
