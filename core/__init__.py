"""Switchboard's domain: messages, tenants, sessions, knowledge, commands and the engine.

Nothing here knows about Slack, Discord, HTTP frameworks or process wiring; adapters
translate platform payloads into :mod:`core.messages` types and render :mod:`core.replies`.
"""
