"""The console's pages and the forms they post.

Each handler finds who is signed in (:mod:`workers.console.auth`), reads or changes
through the operations the CLI and the API call (``connectors.integrations``,
``scheduler.schedules``, ``runs.lifecycle``, ``runs.inbox``, ``runs.progress``), always in
the signed-in organization's tenant session: an id of another organization is not found
(404).  A ``POST`` needs the session's CSRF token, and a read-only key is refused (403).
Database work runs in the thread pool; a change answers with a redirect (303) to the page
that shows it, with a one-line notice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from connectors import integrations
from connectors.registry import installed
from core.errors import NotFoundError, PlugsError
from models.accounts import list_organizations
from models.integrations import Integration, IntegrationLog
from models.notifications import CHANNELS
from models.session import Database, get_database
from models.webhooks import INBOX_STATUSES
from notifications.history import delivery_counts, recent_deliveries
from runs import activity, history, inbox
from runs.lifecycle import cancel_run, replay_run, start_run
from runs.progress import RunProgress, run_progress
from scheduler import schedules
from scheduler.timing import Timing
from workers.console import auth, chart
from workers.console.auth import Refused, Viewer

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
T = TypeVar("T")


class NotHere(Exception):
    """Not found, or not the signed-in organization's (the same to the viewer)."""


async def _blocking(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(function, *args, **kwargs)


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _redirect(request: Request, path: str, notice: str | None = None) -> Response:
    if notice:
        request.session["notice"] = notice
    return RedirectResponse(f"{_base(request)}{path}", status_code=303)


def _render(
    request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any
) -> Response:
    return templates.TemplateResponse(
        request,
        name,
        {
            "base": _base(request),
            "viewer": viewer,
            "csrf": auth.csrf_token(request),
            "notice": request.session.pop("notice", None),
            "can_change": viewer is not None and not viewer.read_only,
            **context,
        },
        status_code=status,
    )


async def _viewer(request: Request) -> tuple[Database, Viewer, uuid.UUID]:
    """Who asks, and for which organization; Refused(401) when nobody is signed in."""
    db = get_database()
    viewer = await _blocking(auth.viewer, db, request)
    if viewer is None:
        raise Refused(401, "sign in first")
    if viewer.organization_id is None:
        raise Refused(409, "pick an organization")
    return db, viewer, viewer.organization_id


async def _change(request: Request) -> tuple[Database, Viewer, uuid.UUID, FormData]:
    """A POST that changes something: signed in, the session's CSRF token, not read-only."""
    db, viewer, org_id = await _viewer(request)
    form = await request.form()
    auth.check_csrf(request, form.get(auth.CSRF_FIELD))
    if viewer.read_only:
        raise Refused(403, "this API key is read-only: it cannot change anything")
    return db, viewer, org_id, form


def _uuid(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise NotHere() from None


def _own_integration(db: Database, org_id: uuid.UUID, integration_id: uuid.UUID) -> Integration:
    """The organization's integration (its tenant session decides); NotHere otherwise."""
    with db.tenant(org_id) as session:
        found = session.get(Integration, integration_id)
        if found is None:
            raise NotHere()
        session.expunge(found)
        return found


def _own_run(db: Database, org_id: uuid.UUID, run_id: uuid.UUID) -> IntegrationLog:
    try:
        return history.get_run(db, org_id, run_id)
    except NotFoundError:
        raise NotHere() from None


# --- signing in ---------------------------------------------------------------------------


async def home(request: Request) -> Response:
    return _redirect(request, "/integrations")


async def sign_in_page(request: Request) -> Response:
    return _render(request, "sign_in.html", None, operators=_operators_allowed())


def _operators_allowed() -> bool:
    try:
        return auth.basic_auth_credentials() is not None
    except Exception:  # noqa: BLE001 - a malformed setting: no operator sign-in
        return False


async def sign_in(request: Request) -> Response:
    form = await request.form()
    auth.check_csrf(request, form.get(auth.CSRF_FIELD))
    key = str(form.get("api_key") or "")
    db = get_database()
    if key:
        if await _blocking(auth.sign_in_with_key, db, request, key):
            return _redirect(request, "/integrations")
    elif auth.sign_in_as_operator(
        request, str(form.get("user") or ""), str(form.get("password") or "")
    ):
        return _redirect(request, "/organizations")
    return _render(
        request,
        "sign_in.html",
        None,
        status=401,
        error="not signed in: unknown, revoked or mistyped credentials",
        operators=_operators_allowed(),
    )


async def sign_out(request: Request) -> Response:
    form = await request.form()
    auth.check_csrf(request, form.get(auth.CSRF_FIELD))
    auth.sign_out(request)
    return _redirect(request, "/sign-in")


async def organizations(request: Request) -> Response:
    db = get_database()
    viewer = await _blocking(auth.viewer, db, request)
    if viewer is None:
        raise Refused(401, "sign in first")
    if not viewer.operator:
        raise NotHere()
    if request.method == "POST":
        form = await request.form()
        auth.check_csrf(request, form.get(auth.CSRF_FIELD))
        try:
            chosen = uuid.UUID(str(form.get("organization_id") or ""))
        except ValueError:
            raise NotHere() from None
        known = {o.id for o in await _blocking(list_organizations, db)}
        if chosen not in known:
            raise NotHere()
        auth.choose_organization(request, chosen)
        return _redirect(request, "/integrations")
    found = await _blocking(list_organizations, db)
    return _render(request, "organizations.html", viewer, organizations=found)


# --- integrations -------------------------------------------------------------------------


async def integrations_page(request: Request) -> Response:
    db, viewer, org_id = await _viewer(request)
    summaries = await _blocking(activity.integration_summaries, db, org_id)
    return _render(request, "integrations.html", viewer, summaries=summaries, providers=installed())


def _lines(text: str) -> dict[str, str]:
    """``key=value`` lines (blank lines skipped)."""
    found = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise PlugsError(f"settings are key=value lines; not {line.strip()!r}")
        found[key.strip()] = value.strip()
    return found


def _credentials(form: FormData) -> dict[str, Any]:
    """The credential fields of a form: a JSON object and/or a token, read as
    `--credentials` and `--token` are (a token of "-" is not standard input here)."""
    token = str(form.get("token") or "").strip()
    if token == "-":
        raise PlugsError("a token of '-' means standard input to the CLI; paste the token")
    return integrations.credentials_from(
        token or None, str(form.get("credentials") or "").strip() or None
    )


def _add_checked(db: Database, org_id: uuid.UUID, provider: str, form: FormData) -> uuid.UUID:
    """Add as `plugs integrations add` does: nothing is kept if the check call fails."""
    name = str(form.get("name") or "").strip() or None
    settings = _lines(str(form.get("settings") or ""))
    created = integrations.add_checked_integration(
        db, org_id, provider, _credentials(form), settings, name=name
    )
    return created.id


async def add_integration(request: Request) -> Response:
    db, viewer, org_id, form = await _change(request)
    provider = str(form.get("provider") or "")
    try:
        created = await _blocking(_add_checked, db, org_id, provider, form)
    except integrations.CredentialsRefused as exc:
        return _redirect(request, "/integrations", str(exc))
    except PlugsError as exc:
        return _redirect(request, "/integrations", f"not added: {exc}")
    return _redirect(request, f"/integrations/{created}", f"added {provider}")


def _integration_view(db: Database, org_id: uuid.UUID, integration_id: uuid.UUID) -> dict[str, Any]:
    _own_integration(db, org_id, integration_id)
    view = integrations.describe_integration(db, integration_id, runs=0)
    runs = history.list_runs(db, org_id, integration_id=integration_id, limit=20).items
    found = schedules.list_schedules(db, org_id, integration_id=integration_id)
    now = datetime.now(UTC)
    picture = chart.draw(activity.recent_activity(db, org_id, integration_id, now=now))
    return {
        "view": view,
        "integration": view.integration,
        "runs": runs,
        "schedules": found,
        "chart": picture,
    }


async def integration_page(request: Request) -> Response:
    db, viewer, org_id = await _viewer(request)
    context = await _blocking(_integration_view, db, org_id, _uuid(request, "integration_id"))
    return _render(request, "integration.html", viewer, **context)


async def chart_svg(request: Request) -> Response:
    db, viewer, org_id = await _viewer(request)
    integration_id = _uuid(request, "integration_id")
    await _blocking(_own_integration, db, org_id, integration_id)
    now = datetime.now(UTC)
    found = await _blocking(activity.recent_activity, db, org_id, integration_id, now=now)
    return templates.TemplateResponse(
        request, "chart.svg.html", {"chart": chart.draw(found)}, media_type="image/svg+xml"
    )


def _integration_action(
    db: Database, org_id: uuid.UUID, integration_id: uuid.UUID, action: str, form: FormData
) -> tuple[str, str]:
    """Do ``action`` on the organization's integration; (where to go, notice)."""
    _own_integration(db, org_id, integration_id)
    here = f"/integrations/{integration_id}"
    if action == "sync":
        run_id = start_run(db, org_id, integration_id, full_refresh=bool(form.get("full")))
        return f"/runs/{run_id}", "sync started"
    if action == "pause":
        schedules.set_active(db, integration_id, False)
        return here, "paused: schedules stop, webhook deliveries wait"
    if action == "resume":
        waiting = schedules.set_active(db, integration_id, True)
        return here, f"resumed: {waiting} waiting webhook deliveries enqueued"
    if action == "test":
        check = integrations.check_integration(db, integration_id)
        return here, f"{'ok' if check.ok else 'failed'}: {check.message}"
    if action == "credentials":
        changed = integrations.update_integration(
            db, integration_id, credentials=_credentials(form)
        )
        return here, f"updated: {', '.join(changed)}"
    if action == "schedule":
        every = str(form.get("every") or "").strip()
        cron = str(form.get("cron") or "").strip()
        if not every and not cron:
            cleared = schedules.clear_schedules(db, integration_id)
            return here, f"{cleared} schedules cleared"
        timezone = str(form.get("timezone") or "").strip() or None
        try:
            timing = Timing.parse(every=every or None, cron=cron or None, timezone=timezone)
        except ValueError as exc:
            raise PlugsError(str(exc)) from None
        schedule = schedules.set_schedule(db, integration_id, timing)
        return here, f"scheduled: {schedules.describe_schedule(schedule)}"
    if action == "remove":
        removal = integrations.remove_integration(db, integration_id)
        problems = f" ({'; '.join(removal.problems)})" if removal.problems else ""
        return "/integrations", f"removed: {removal.schedules} schedules cleared{problems}"
    if action == "replay-webhooks":
        count = inbox.replay(db, org_id, integration_id, failed_only=bool(form.get("failed")))
        return f"{here}/webhooks", f"{count} deliveries enqueued for processing"
    raise NotHere()


async def integration_action(request: Request) -> Response:
    db, viewer, org_id, form = await _change(request)
    integration_id = _uuid(request, "integration_id")
    action = str(request.path_params["action"])
    try:
        where, notice = await _blocking(
            _integration_action, db, org_id, integration_id, action, form
        )
    except NotFoundError:
        raise NotHere() from None
    except PlugsError as exc:
        where, notice = f"/integrations/{integration_id}", f"{action} refused: {exc}"
    return _redirect(request, where, notice)


async def webhooks_page(request: Request) -> Response:
    db, viewer, org_id = await _viewer(request)
    integration_id = _uuid(request, "integration_id")
    integration = await _blocking(_own_integration, db, org_id, integration_id)
    status = request.query_params.get("status") or None
    if status not in (None, *INBOX_STATUSES):
        status = None
    deliveries = await _blocking(
        history.list_webhook_deliveries,
        db,
        org_id,
        integration_id=integration_id,
        status=status,
        limit=100,
    )
    return _render(
        request,
        "webhooks.html",
        viewer,
        integration=integration,
        deliveries=deliveries.items,
        shown=status,
        statuses=INBOX_STATUSES,
    )


# --- runs ---------------------------------------------------------------------------------


def _elapsed(progress: RunProgress) -> float:
    if progress.started_at is None:
        return 0.0
    end = progress.completed_at or datetime.now(UTC)
    return max(0.0, (end - progress.started_at).total_seconds())


def progress_context(db: Database, org_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any]:
    """What the live part of a run's page shows (the page and its SSE stream)."""
    try:
        progress = run_progress(db, org_id, run_id)
    except LookupError:
        raise NotHere() from None
    return {"progress": progress, "elapsed": _elapsed(progress)}


async def run_page(request: Request) -> Response:
    db, viewer, org_id = await _viewer(request)
    run_id = _uuid(request, "run_id")
    run = await _blocking(_own_run, db, org_id, run_id)
    context = await _blocking(progress_context, db, org_id, run_id)
    failures = history.failed_records(run)
    return _render(request, "run.html", viewer, run=run, failures=failures, **context)


async def run_action(request: Request) -> Response:
    db, viewer, org_id, form = await _change(request)
    run_id = _uuid(request, "run_id")
    action = str(request.path_params["action"])
    await _blocking(_own_run, db, org_id, run_id)
    try:
        if action == "replay":
            new_run = await _blocking(replay_run, db, org_id, run_id)
            return _redirect(request, f"/runs/{new_run}", "replaying the failed records")
        if action == "cancel":
            run = await _blocking(cancel_run, db, org_id, run_id)
            return _redirect(request, f"/runs/{run_id}", run.message or run.status)
    except NotFoundError:
        raise NotHere() from None
    except PlugsError as exc:
        return _redirect(request, f"/runs/{run_id}", f"{action} refused: {exc}")
    raise NotHere()


# --- notifications ------------------------------------------------------------------------


async def notifications_page(request: Request) -> Response:
    db, viewer, org_id = await _viewer(request)
    channel = request.query_params.get("channel") or None
    if channel not in (None, *CHANNELS):
        channel = None
    deliveries = await _blocking(recent_deliveries, db, org_id, channel=channel)
    counts = await _blocking(delivery_counts, db, org_id)
    return _render(
        request,
        "notifications.html",
        viewer,
        deliveries=deliveries,
        counts=counts,
        channel=channel,
        channels=CHANNELS,
    )
