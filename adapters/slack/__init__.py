"""The Slack channel: events and slash commands in, Block Kit out.

Work in progress for issue 4: payload translation (``inbound``) and rendering
(``render``) are done and tested; the bolt app, OAuth and streaming land next.
"""
