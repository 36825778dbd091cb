"""Concrete store implementations behind the core protocols (MongoDB today)."""
