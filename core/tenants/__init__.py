"""Tenants: their configuration files, validation and the registry that resolves them."""

from core.tenants.models import TenantConfig
from core.tenants.registry import TenantRegistry, UnknownTenant

__all__ = ["TenantConfig", "TenantRegistry", "UnknownTenant"]
