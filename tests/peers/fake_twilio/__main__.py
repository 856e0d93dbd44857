"""``python -m tests.peers.fake_twilio --port 8765 --latency-ms 200``: serve the fake until stopped."""

from tests.peers.fake_twilio.process import main

main()
