"""Local stand-ins for SaaS that cannot be reached from here, speaking their wire formats."""
