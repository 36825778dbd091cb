"""The Discord channel: a discord.py gateway client serving every tenant's guilds."""
