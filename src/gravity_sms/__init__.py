"""Gravity SMS — a multi-tenant SMS gateway for RingCentral."""

__version__ = "0.1.0"
