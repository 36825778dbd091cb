"""The Slack tenant policy: workspaces, Enterprise Grid orgs, own apps, Slack Connect."""

from __future__ import annotations

import pytest

from adapters.slack.authority import (
    RefusedWorkspace,
    SlackAuthority,
    decide,
    is_external_actor,
    is_external_clicker,
)
from core.tenants.models import TenantConfig
from core.tenants.registry import TenantRegistry

ACME = TenantConfig.model_validate({"id": "acme", "name": "Acme",
                                    "slack": {"team_ids": ["T0ACME", "E0ACME"]}})
HOOLI = TenantConfig.model_validate({"id": "hooli", "name": "Hooli",
                                     "slack": {"team_ids": ["T0HOOLI"]}})
TENANTS = TenantRegistry.from_configs(ACME, HOOLI)


def test_the_authorized_workspace_decides_the_tenant() -> None:
    assert decide(TENANTS.resolve, "T0ACME", None, None).tenant.id == "acme"
    assert decide(TENANTS.resolve, "T0HOOLI", "E0ACME", None).tenant.id == "hooli"


def test_an_org_claims_its_workspaces_and_org_wide_installs() -> None:
    assert decide(TENANTS.resolve, None, "E0ACME", None).workspace == "E0ACME"
    assert decide(TENANTS.resolve, "T0NEWWS", "E0ACME", None).tenant.id == "acme"


def test_an_own_app_never_speaks_for_another_tenant() -> None:
    assert decide(TENANTS.resolve, "T0HOOLI", None, "hooli").tenant.id == "hooli"
    for team, org in (("T0ACME", None), (None, "E0ACME"), ("T0NOBODY", "E0ACME")):
        with pytest.raises(RefusedWorkspace):
            decide(TENANTS.resolve, team, org, "hooli")


def test_unbound_workspaces_are_refused() -> None:
    for team, org in (("T0NOBODY", None), (None, None), ("", "E0NOBODY")):
        with pytest.raises(RefusedWorkspace):
            decide(TENANTS.resolve, team, org, None)


def test_slack_connect_actors_from_other_orgs_are_external() -> None:
    acme = SlackAuthority(ACME, "T0ACME")
    shared = {"is_ext_shared_channel": True}
    assert not is_external_actor({}, {"actor_team_id": "T0OTHER"}, acme)
    assert not is_external_actor(shared, {"actor_team_id": "T0ACME"}, acme)
    assert not is_external_actor(shared, {"actor_enterprise_id": "E0ACME"}, acme)
    assert is_external_actor(shared, {"actor_team_id": "T0OTHER"}, acme)
    assert is_external_actor(shared, {}, acme), "an unidentified actor counts as external"
    assert is_external_clicker({"user": {"id": "U1", "team_id": "T0OTHER"}}, acme)
    assert not is_external_clicker({"user": {"id": "U1", "team_id": "T0ACME"}}, acme)
    assert not is_external_clicker({"user": {"id": "U1"}}, acme)
