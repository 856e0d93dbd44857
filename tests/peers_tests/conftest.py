"""Fixtures for the peer self-tests.

The brief suggested ``pytest_plugins = ["tests.peers.fixtures"]`` here, but pytest fails the whole
run ("Defining 'pytest_plugins' in a non-top-level conftest is no longer supported") as soon as
this directory is collected from the repository root. So: when the top-level tests/conftest.py
already loads the plugin (it has been imported by then), use that; otherwise import the fixtures
into this conftest so these tests also run on their own.
"""

import sys

if "tests.peers.fixtures" not in sys.modules:
    from tests.peers.fixtures import *  # noqa: F403
