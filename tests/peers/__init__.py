"""Real protocol peers on loopback: a fake Twilio REST API, a fake SMTP server, a webhook receiver.

Import the fixtures with ``pytest_plugins = ["tests.peers.fixtures"]`` in the root conftest, or
``from tests.peers.fixtures import *`` in a nested one (see tests/peers/fixtures.py).
"""
