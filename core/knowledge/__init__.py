"""Tenant knowledge: what the assistant may cite."""
