"""Durable intake: the local journal of accepted turns, and their recovery."""
