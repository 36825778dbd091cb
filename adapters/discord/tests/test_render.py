"""Discord renders answers without link previews: a preview is Discord's servers
fetching the link, which would carry data in a URL out to its host."""

from __future__ import annotations

from adapters.discord.render import no_previews, render
from core.replies import CONFIRM_NO, CONFIRM_YES, Action, Reply


def test_links_are_wrapped_so_discord_fetches_no_preview() -> None:
    text = ("See https://a.example/x?d=1, [the doc](https://b.example/p) and "
            "(https://d.example/q). Already <https://c.example/>. `https://code.example/x`")
    assert no_previews(text) == (
        "See <https://a.example/x?d=1>, [the doc](<https://b.example/p>) and "
        "(<https://d.example/q>). Already <https://c.example/>. `https://code.example/x`")
    [message] = render(Reply("Read https://evil.example/leak now.", turn_id="t1"))
    assert message.content == "Read <https://evil.example/leak> now."


def test_a_proposed_change_gets_confirm_and_cancel_buttons() -> None:
    reply = Reply("Shall I?", turn_id="t1", actions=(
        Action(CONFIRM_YES, "Confirm", "abcDEF123456"), Action(CONFIRM_NO, "Cancel",
                                                               "abcDEF123456")))
    [message] = render(reply)
    assert message.view is not None
    ids = [getattr(item, "custom_id", "") for item in message.view.children]
    assert ids[:2] == ["sb:cf:yes:abcDEF123456", "sb:cf:no:abcDEF123456"]
