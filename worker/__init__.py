"""Delivery worker: RQ jobs, the worker entry (``python -m worker``), the provider callback service."""
