"""The console's pages at ``/admin``, rendered on the server (Jinja2, autoescaped) over
the engine's console queries.

Signing in takes a tenant's admin key (the variable its ``[api] key_env`` names) or the
operator token (``SWITCHBOARD_OPERATOR_TOKEN``, every tenant); keys are compared in
constant time and never logged. A tenant's pages answer 404 to a session of another
tenant, as for a tenant that does not exist. Every state-changing request is a POST with
the session's CSRF token; a missing or wrong one is refused with 403 before anything is
read or changed. Responses carry a strict Content-Security-Policy (scripts and styles
from this origin only), are never cached, and cannot be framed.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from adapters.console import forms
from adapters.console.auth import (
    COOKIE,
    LOGIN_COOKIE,
    OPERATOR,
    SESSION_S,
    ConsoleAuth,
    Session,
    login_token,
    same,
)
from core.engine import (
    Engine,
    KnowledgeUnavailable,
    UnknownTenant,
    gaps_csv,
)
from core.tenants.models import TenantConfig

log = logging.getLogger("switchboard.console")

HERE = Path(__file__).resolve().parent
STATIC = {"console.css": (HERE / "static" / "console.css", "text/css"),
          "console.js": (HERE / "static" / "console.js", "text/javascript"),
          "chart.umd.js": (HERE / "assets" / "node_modules" / "chart.js" / "dist" /
                           "chart.umd.js", "text/javascript")}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
}
NOTICES = {"uploaded": "Ingested: {n} added or replaced, {u} unchanged, {f} failed.",
           "deleted": "The document was deleted.", "missing": "No such document.",
           "reindexed": "Re-indexed: {n} documents.", "nothing": "Choose files or a URL."}
MAX_UPLOAD_MB = 50
FAILED_SIGN_INS_PER_MINUTE = 10

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Console:
    def __init__(self, engine: Callable[[], Engine], auth: Callable[[], ConsoleAuth],
                 operator_token: Callable[[], str], *, https: bool = False) -> None:
        """``engine`` and ``auth`` are looked up per request: both are made once the
        web app's services are open, after the routes are registered. ``https``: the
        public reaches this server over HTTPS (``SWITCHBOARD_PUBLIC_URL``), so cookies
        are Secure even when a proxy in front speaks plain HTTP to it."""
        self._engine = engine
        self._auth_of = auth
        self._https = https
        self._operator_token = operator_token
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._env = Environment(loader=FileSystemLoader(HERE / "templates"),
                                autoescape=select_autoescape(["html"]),
                                undefined=StrictUndefined,  # a misspelt field fails a test
                                trim_blocks=True, lstrip_blocks=True)

    def register(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/admin", self.home)
        r.add_get("/admin/", self.home)
        r.add_get("/admin/login", self.login_page)
        r.add_post("/admin/login", self.login)
        r.add_post("/admin/logout", self.logout)
        r.add_get("/admin/static/{name}", self.static)
        base = "/admin/t/{tenant}"
        r.add_get(f"{base}", self._page(self.overview))
        r.add_get(f"{base}/", self._page(self.overview))
        r.add_get(f"{base}/gaps", self._page(self.gaps))
        r.add_get(f"{base}/gaps.csv", self._page(self.gaps_export))
        r.add_get(f"{base}/feedback", self._page(self.feedback))
        r.add_get(f"{base}/documents", self._page(self.documents))
        r.add_post(f"{base}/documents/upload", self._page(self.upload, post=True))
        r.add_post(f"{base}/documents/reindex", self._page(self.reindex, post=True))
        r.add_post(f"{base}/documents/{{doc_id}}/delete", self._page(self.delete, post=True))
        r.add_get(f"{base}/conversations", self._page(self.conversations))
        r.add_get(f"{base}/conversations/{{channel}}/{{thread}}",
                  self._page(self.conversation))
        r.add_get(f"{base}/audit", self._page(self.audit))
        r.add_get(f"{base}/settings", self._page(self.settings))

    @property
    def _auth(self) -> ConsoleAuth:
        return self._auth_of()

    # -- rendering ---------------------------------------------------------------------

    def _render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        context = {"notice": "", "error": "", "page": "", "csrf": "", **context}
        html = self._env.get_template(template).render(**context)
        return web.Response(text=html, content_type="text/html", status=status,
                            headers=HEADERS)

    def _error(self, status: int, title: str, message: str) -> web.Response:
        return self._render("error.html", status, title=title, message=message, tenant=None)

    async def static(self, request: web.Request) -> web.StreamResponse:
        found = STATIC.get(request.match_info["name"])
        if found is None or not found[0].is_file():
            raise web.HTTPNotFound(text="no such file")
        return web.FileResponse(found[0], headers={"Content-Type": found[1],
                                                   "Cache-Control": "max-age=3600"})

    # -- signing in --------------------------------------------------------------------

    def _session(self, request: web.Request) -> Session | None:
        return self._auth.session(request.cookies.get(COOKIE))

    async def home(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session is None:
            raise web.HTTPSeeOther("/admin/login")
        if session.scope != OPERATOR:
            raise web.HTTPSeeOther(f"/admin/t/{session.scope}/")
        return self._render("tenants.html", title="Tenants", tenant=None,
                            tenants=self._engine().tenants(), csrf=self._auth.csrf(session))

    async def login_page(self, request: web.Request, *, error: str = "",
                         status: int = 200) -> web.Response:
        token = login_token()
        response = self._render("login.html", status, title="Sign in", tenant=None,
                                login_token=token, error=error)
        response.set_cookie(LOGIN_COOKIE, token, max_age=1800, path="/admin", httponly=True,
                            samesite="Strict", secure=request.secure or self._https)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await forms.form(request)
        if not same(str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")):
            log.warning("console sign-in without its form token", extra={"channel": "console"})
            return await self.login_page(request, error="Your sign-in form expired; please "
                                                        "try again.", status=403)
        ip = request.remote or "-"
        if not self._may_try(ip):
            return await self.login_page(request, error="Too many failed sign-ins; wait a "
                                                        "minute.", status=429)
        scope = self._scope_of(str(form.get("key", "")))
        if scope is None:
            self._failures[ip].append(time.monotonic())
            log.warning("console sign-in refused: the key matches no tenant",
                        extra={"channel": "console", "ip": ip})
            return await self.login_page(request, error="That key opens nothing here.",
                                         status=401)
        cookie, _ = self._auth.issue(scope)
        log.info("console sign-in", extra={"channel": "console",
                                           "tenant": "" if scope == OPERATOR else scope,
                                           "operator": scope == OPERATOR})
        response = web.HTTPSeeOther("/admin/" if scope == OPERATOR else f"/admin/t/{scope}/")
        response.set_cookie(COOKIE, cookie, max_age=SESSION_S, path="/admin", httponly=True,
                            samesite="Strict", secure=request.secure or self._https)
        response.del_cookie(LOGIN_COOKIE, path="/admin")
        raise response

    def _may_try(self, ip: str) -> bool:
        failures, now = self._failures[ip], time.monotonic()
        while failures and now - failures[0] > 60:
            failures.popleft()
        if not failures:
            del self._failures[ip]  # only addresses failing this minute are kept
            return True
        return len(failures) < FAILED_SIGN_INS_PER_MINUTE

    def _scope_of(self, key: str) -> str | None:
        """The operator for the operator token, else the one tenant whose admin key it is."""
        if not key or len(key) > 512:
            return None
        if same(key, self._operator_token()):
            return OPERATOR
        matched = None
        for tenant in self._engine().tenants():  # every key compared: no early exit
            expected = os.environ.get(tenant.api.key_env, "") if tenant.api.key_env else ""
            if expected and same(key, expected):
                matched = tenant.id
        return matched

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        form = await forms.form(request)
        if session is not None and not self._auth.csrf_ok(session, str(form.get("csrf", ""))):
            return self._error(403, "Refused", "That form did not come from this console.")
        response = web.HTTPSeeOther("/admin/login")
        response.del_cookie(COOKIE, path="/admin")
        raise response

    # -- a tenant's pages --------------------------------------------------------------

    def _page(self, handler: Callable[[web.Request, TenantConfig, Session],
                                      Awaitable[web.StreamResponse]],
              *, post: bool = False) -> Handler:
        async def page(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            if session is None:
                raise web.HTTPSeeOther("/admin/login")
            tenant_id = request.match_info["tenant"]
            try:
                tenant = self._engine().tenant(tenant_id)
            except UnknownTenant:
                tenant = None
            if tenant is None or not session.may_see(tenant_id):
                return self._error(404, "Not found", "There is no such workspace here.")
            if post and not self._auth.csrf_ok(session, request.query.get("csrf", "")
                                               or await forms.form_csrf(request)):
                await request.release()  # the refused body is drained, not left unread
                log.warning("console form without a valid CSRF token",
                            extra={"channel": "console", "tenant": tenant_id})
                return self._error(403, "Refused", "That form did not come from this "
                                                   "console; reload the page and try again.")
            return await handler(request, tenant, session)
        return page

    def _tenant_page(self, template: str, page: str, tenant: TenantConfig, session: Session,
                     request: web.Request, **context: Any) -> web.Response:
        notice = ""
        code = request.query.get("done", "")
        if code in NOTICES:
            values = {k: int(request.query.get(k, "0") or 0) if request.query.get(
                k, "0").isdigit() else 0 for k in ("n", "u", "f")}
            notice = NOTICES[code].format(**values)
        return self._render(template, title=f"{tenant.name}", tenant=tenant, page=page,
                            csrf=self._auth.csrf(session), notice=notice, **context)

    async def overview(self, request: web.Request, tenant: TenantConfig,
                       session: Session) -> web.StreamResponse:
        days = forms.days(request, 14)
        view = await self._engine().console.overview(tenant, days)
        chart = {"labels": [d.day.strftime("%b %d") for d in view.days],
                 "cited": [d.cited for d in view.days],
                 "no_source": [d.no_source for d in view.days],
                 "failed": [d.failed for d in view.days],
                 "other": [d.turns - d.cited - d.no_source - d.failed for d in view.days],
                 "tokens": [d.tokens for d in view.days],
                 "cost": [round(d.cost_usd, 4) for d in view.days],
                 "users": [d.users for d in view.days],
                 "channel_labels": list(view.channels), "channel_counts":
                 list(view.channels.values())}
        month = view.month
        return self._tenant_page("overview.html", "", tenant, session, request, view=view,
                                 chart_data=chart, budget=tenant.llm.monthly_token_budget,
                                 month_tokens=month.tokens if month else 0,
                                 month_cost=month.cost_usd if month else 0.0)

    async def gaps(self, request: web.Request, tenant: TenantConfig,
                   session: Session) -> web.StreamResponse:
        days = forms.days(request, 30)
        found = await self._engine().console.gaps(tenant, days)
        return self._tenant_page("gaps.html", "gaps", tenant, session, request, gaps=found,
                                 days=days)

    async def gaps_export(self, request: web.Request, tenant: TenantConfig,
                          session: Session) -> web.StreamResponse:
        found = await self._engine().console.gaps(tenant, forms.days(request, 30))
        return web.Response(text=gaps_csv(found), content_type="text/csv", headers={
            **HEADERS, "Content-Disposition":
            f'attachment; filename="{tenant.id}-knowledge-gaps.csv"'})

    async def feedback(self, request: web.Request, tenant: TenantConfig,
                       session: Session) -> web.StreamResponse:
        ratings = await self._engine().console.feedback(tenant)
        return self._tenant_page("feedback.html", "feedback", tenant, session, request,
                                 ratings=ratings)

    async def documents(self, request: web.Request, tenant: TenantConfig,
                        session: Session) -> web.StreamResponse:
        try:
            documents = await self._engine().documents(tenant)
        except KnowledgeUnavailable as exc:
            return self._error(503, "Knowledge unavailable", str(exc))
        schedules = []
        for source in tenant.knowledge.sources:
            if source.schedule:
                from apscheduler.triggers.cron import CronTrigger
                trigger = CronTrigger.from_crontab(source.schedule, timezone=UTC)
                upcoming = trigger.get_next_fire_time(None, datetime.now(UTC))
                schedules.append({"source": source.path, "cron": source.schedule,
                                  "next": upcoming.strftime("%Y-%m-%d %H:%M UTC")
                                  if upcoming else "never"})
        runs = await self._engine().console.ingest_runs(tenant)
        return self._tenant_page("documents.html", "documents", tenant, session, request,
                                 documents=documents, schedules=schedules, runs=runs)

    async def upload(self, request: web.Request, tenant: TenantConfig,
                     session: Session) -> web.StreamResponse:
        files, url = await forms.read_upload(request, min(tenant.knowledge.max_file_mb,
                                                      MAX_UPLOAD_MB))
        if not files and not url:
            raise web.HTTPSeeOther(f"/admin/t/{tenant.id}/documents?done=nothing")
        engine = self._engine()
        try:
            reports = []
            if files:
                reports.append(await engine.ingest_files(tenant, files))
            if url:
                reports.append(await engine.ingest(tenant, [url], []))
        except KnowledgeUnavailable as exc:
            return self._error(503, "Knowledge unavailable", str(exc))
        n, u, f = (sum(forms.count(r, *s) for r in reports) for s in
                   (("added", "replaced"), ("unchanged",), ("failed",)))
        log.info("console upload", extra={"channel": "console", "tenant": tenant.id,
                                          "files": len(files), "url": bool(url)})
        raise web.HTTPSeeOther(f"/admin/t/{tenant.id}/documents?done=uploaded&n={n}&u={u}"
                               f"&f={f}")

    async def reindex(self, request: web.Request, tenant: TenantConfig,
                      session: Session) -> web.StreamResponse:
        try:
            report = await self._engine().ingest_sources(tenant, [], reindex=True)
        except KnowledgeUnavailable as exc:
            return self._error(503, "Knowledge unavailable", str(exc))
        raise web.HTTPSeeOther(f"/admin/t/{tenant.id}/documents?done=reindexed"
                               f"&n={len(report.outcomes)}")

    async def delete(self, request: web.Request, tenant: TenantConfig,
                     session: Session) -> web.StreamResponse:
        try:
            removed = await self._engine().remove_document(tenant, request.match_info["doc_id"])
        except KnowledgeUnavailable as exc:
            return self._error(503, "Knowledge unavailable", str(exc))
        raise web.HTTPSeeOther(f"/admin/t/{tenant.id}/documents?done="
                               f"{'deleted' if removed else 'missing'}")

    async def conversations(self, request: web.Request, tenant: TenantConfig,
                            session: Session) -> web.StreamResponse:
        threads = await self._engine().console.conversations(tenant)
        return self._tenant_page("conversations.html", "conversations", tenant, session,
                                 request, threads=threads)

    async def conversation(self, request: web.Request, tenant: TenantConfig,
                           session: Session) -> web.StreamResponse:
        convo = await self._engine().console.conversation(
            tenant, request.match_info["channel"], request.match_info["thread"])
        if convo is None:
            return self._error(404, "Not found", "No such conversation in this workspace.")
        return self._tenant_page("conversation.html", "conversations", tenant, session,
                                 request, convo=convo)

    async def audit(self, request: web.Request, tenant: TenantConfig,
                    session: Session) -> web.StreamResponse:
        records = await self._engine().console.audit(tenant)
        return self._tenant_page("audit.html", "audit", tenant, session, request,
                                 records=records)

    async def settings(self, request: web.Request, tenant: TenantConfig,
                       session: Session) -> web.StreamResponse:
        text, problems = await self._engine().console.settings(tenant)
        return self._tenant_page("settings.html", "settings", tenant, session, request,
                                 text=text, problems=problems)
