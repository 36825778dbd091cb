"""Which tenant a Slack request speaks for, decided once from what was authenticated.

A request is authenticated twice before any listener runs: its signature proves which
app it came through (the shared app, or one tenant's own app at
``/slack/events/<tenant>``), and bolt's ``authorize`` step names the workspace that app
is installed in (``authorizations[0]`` for events, ``team`` for interactivity and
commands). The tenant decided there is put into bolt's request context and carried on
every message the adapter builds (``InboundMessage.tenant_id``); nothing later in the
body — ``team_id``, ``event.team``, ``user.team_id``, ``enterprise_id`` — can change it.

Workspaces map to tenants through ``slack.team_ids``. An Enterprise Grid org id
(``E…``) in that list claims every workspace of the org, which is also how an org-wide
installation (no team in its authorization) is matched; a workspace listed by another
tenant is more specific and wins over the org.

Slack Connect: in a channel shared with another organization, the event is delivered to
each organization's installation separately, and each answers as its own tenant in its
own conversation. The person writing may belong to the other organization (bolt's
``actor_team_id`` / ``actor_enterprise_id``); such a person is answered only when the
tenant sets ``slack.external_users = "answer"`` and is never an admin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.engine import UnknownTenant
from core.messages import Binding
from core.tenants.models import TenantConfig

CONTEXT_KEY = "switchboard_authority"


@dataclass(frozen=True, slots=True)
class SlackAuthority:
    """The authenticated tenant of one request and the workspace (or org) that matched."""

    tenant: TenantConfig
    workspace: str
    own_app: bool = False
    """Signed by the tenant's own app (its token from ``slack.bot_token_env``)."""

    def binding(self) -> Binding:
        return Binding("slack", self.workspace)

    def owns(self, team_or_org: object) -> bool:
        """Whether a team or org id is this tenant's (the authorized one or a bound one)."""
        return team_or_org == self.workspace or team_or_org in self.tenant.slack.team_ids


class RefusedWorkspace(LookupError):
    """The authorized workspace belongs to no tenant, or to another tenant than the app
    that signed the request."""


def decide(resolve: Callable[[Binding], TenantConfig], team_id: str | None,
           enterprise_id: str | None, only_tenant: str | None) -> SlackAuthority:
    """The tenant for bolt's authorized ids (``resolve`` maps a binding to its tenant or
    raises ``UnknownTenant``: ``Engine.tenant_for``); ``only_tenant`` is the tenant whose
    own app signed the request (None for the shared app)."""
    for candidate in (team_id, enterprise_id):
        if not candidate:
            continue
        try:
            tenant = resolve(Binding("slack", candidate))
        except UnknownTenant:
            continue
        if only_tenant is not None and tenant.id != only_tenant:
            raise RefusedWorkspace(f"the own app of tenant {only_tenant} named workspace "
                                   f"{candidate}, which belongs to another tenant")
        return SlackAuthority(tenant, candidate, own_app=only_tenant is not None)
    raise RefusedWorkspace(f"workspace {team_id or '-'} (org {enterprise_id or '-'}) is "
                           "bound to no tenant")


def authority_of(context: Mapping[str, Any]) -> SlackAuthority:
    """The authority ``authorize`` stored; bolt runs no listener without it."""
    found = context.get(CONTEXT_KEY)
    if not isinstance(found, SlackAuthority):
        raise RefusedWorkspace("the request reached a listener without an authorized tenant")
    return found


def is_external_actor(body: Mapping[str, Any], context: Mapping[str, Any],
                      authority: SlackAuthority) -> bool:
    """Whether the person acting belongs to another organization (Slack Connect).

    Only events in an externally shared channel (``is_ext_shared_channel``) can come
    from outside; there bolt names the actor's team or org, and an actor it could not
    identify counts as external.
    """
    if body.get("is_ext_shared_channel") is not True:
        return False
    actor_team = context.get("actor_team_id")
    actor_org = context.get("actor_enterprise_id")
    if actor_team is None and actor_org is None:
        return True
    return not (authority.owns(actor_team) or authority.owns(actor_org))


def is_external_clicker(body: Mapping[str, Any], authority: SlackAuthority) -> bool:
    """Whether the person behind a button or shortcut is from another organization: an
    interactivity payload names the person's own team in ``user.team_id``."""
    user = body.get("user")
    team = user.get("team_id") if isinstance(user, Mapping) else None
    return bool(team) and not authority.owns(team)
