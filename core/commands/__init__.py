"""Commands: declared once, available in every channel."""

from core.commands.registry import Command, CommandContext, CommandRegistry, CommandResult

__all__ = ["Command", "CommandContext", "CommandRegistry", "CommandResult"]
