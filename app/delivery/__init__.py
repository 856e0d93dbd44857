"""Delivery: the message lifecycle, provider outcomes, dispatching, sweeping and rate limits.

Shared by the app (which writes messages and enqueues them) and the worker (which sends them).
"""
