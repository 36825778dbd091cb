"""Commands: declared once, available in every channel."""

from core.commands.context import CommandContext
from core.commands.registry import Command, CommandRegistry, CommandResult

__all__ = ["Command", "CommandContext", "CommandRegistry", "CommandResult"]
