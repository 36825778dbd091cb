"""App installations (OAuth) in MongoDB (``installations`` collection), tokens encrypted.

One document per (platform, team): installing again replaces it, uninstalling deletes
it. The bot token is stored only as ciphertext made by :class:`TokenCipher`; nothing in
this collection can be used without the key from the environment. Which tenant a team
belongs to is not stored here: tenant files bind team ids, so an install never grants
a workspace access to a tenant by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from adapters.slack.token_cipher import TokenCipher

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Installation:
    platform: str
    team_id: str
    bot_token: str
    bot_user_id: str = ""
    bot_id: str = ""
    enterprise_id: str = ""
    team_name: str = ""
    scopes: tuple[str, ...] = ()
    installer_user_id: str = ""
    installed_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class MongoInstallationStore:
    def __init__(self, db: AsyncDatabase[Document], cipher: TokenCipher) -> None:
        self._installations = db["installations"]
        self._cipher = cipher

    @staticmethod
    def _id(platform: str, team_id: str) -> str:
        return f"{platform}:{team_id}"

    async def save(self, installation: Installation) -> None:
        doc = {
            "_id": self._id(installation.platform, installation.team_id),
            "platform": installation.platform, "team_id": installation.team_id,
            "enterprise_id": installation.enterprise_id, "team_name": installation.team_name,
            "bot_token_enc": self._cipher.encrypt(installation.bot_token),
            "bot_user_id": installation.bot_user_id, "bot_id": installation.bot_id,
            "scopes": list(installation.scopes),
            "installer_user_id": installation.installer_user_id,
            "installed_at": installation.installed_at,
        }
        await self._installations.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def find(self, platform: str, team_id: str) -> Installation | None:
        doc = await self._installations.find_one({"_id": self._id(platform, team_id)})
        if doc is None:
            return None
        return Installation(
            platform=doc["platform"], team_id=doc["team_id"],
            bot_token=self._cipher.decrypt(doc["bot_token_enc"]),
            bot_user_id=doc.get("bot_user_id", ""), bot_id=doc.get("bot_id", ""),
            enterprise_id=doc.get("enterprise_id", ""), team_name=doc.get("team_name", ""),
            scopes=tuple(doc.get("scopes", ())),
            installer_user_id=doc.get("installer_user_id", ""),
            installed_at=doc.get("installed_at", datetime.now(UTC)))

    async def delete(self, platform: str, team_id: str) -> bool:
        result = await self._installations.delete_one({"_id": self._id(platform, team_id)})
        return result.deleted_count > 0

    async def raw(self, platform: str, team_id: str) -> Document | None:
        """The stored document as is (tests check the token is not in plain text)."""
        return await self._installations.find_one({"_id": self._id(platform, team_id)})
