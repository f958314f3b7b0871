"""The console's pages and its JSON API."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from hookstream.core.access import Action, authenticate_password, authenticate_token
from hookstream.errors import HookstreamError
from hookstream.kafka.reading import read_at
from hookstream.kafka.topics import dlq_topic
from hookstream.ops.audit import record_operator_action
from hookstream.ops.console.access import (
    CSRF_FIELD,
    PRINCIPAL,
    WHO,
    csrf_of,
    principal_of,
    require,
    sign_in_token,
    start_session,
)
from hookstream.ops.index import STATES, EventFilter, IndexedEvent
from schemas import EnvelopeError, decode_envelope

if TYPE_CHECKING:
    from hookstream.ops.console.app import IndexHolder

FILTERS = ("q", "source", "type", "entity", "state", "destination", "since", "until")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/signin", signin_page)
    r.add_post("/signin", signin)
    r.add_post("/signout", signout)
    r.add_get("/", root)
    r.add_get("/events", events_page)
    r.add_get("/events/{source}/{event_id}", event_page)
    r.add_get("/dlq", dlq_page)
    r.add_post("/dlq/redrive", dlq_redrive)
    r.add_get("/dlq/jobs/{job}", job_page)
    r.add_get("/destinations", destinations_page)
    r.add_post("/destinations/{name}/{action:pause|resume}", destination_action)
    r.add_get("/lanes", lanes_page)
    r.add_post("/lanes/release", lane_release)
    r.add_get("/api/events", api_events)
    r.add_get("/api/events/{event_id}", api_event)
    r.add_get("/api/counts", api_counts)
    r.add_get("/api/dlq", api_dlq)
    r.add_get("/api/jobs/{job}", api_job)


async def root(_request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/events")


def _app_parts(request: web.Request) -> tuple[Any, IndexHolder]:
    from hookstream.ops.console.app import INDEX, SETTINGS

    return request.app[SETTINGS], request.app[INDEX]


async def page_context(request: web.Request) -> dict[str, Any]:
    """What every page's layout needs: who is signed in, the CSRF token, the index health."""
    from hookstream.ops.console.app import INDEX

    principal = request.get(WHO)
    holder = request.app[INDEX]
    return {
        "principal": principal,
        "csrf": csrf_of(request),
        "csrf_field": CSRF_FIELD,
        "index_ready": holder.ready,
        "index_error": holder.error,
        "path": request.path,
    }


async def healthz(request: web.Request) -> web.Response:
    _settings, holder = _app_parts(request)
    return web.json_response({"ok": True, "index_ready": holder.ready})


async def readyz(request: web.Request) -> web.Response:
    """Ready once the index has read the topics to their end at least once."""
    _settings, holder = _app_parts(request)
    status = 200 if holder.ready else 503
    return web.json_response({"index_ready": holder.ready, "error": holder.error}, status=status)


# --- sign-in ---


@aiohttp_jinja2.template("signin.html")
async def signin_page(request: web.Request) -> dict[str, Any]:
    return {
        "signin_csrf": await sign_in_token(request),
        "next": _safe_next(request.query.get("next")),
        "error": None,
    }


async def signin(request: web.Request) -> web.StreamResponse:
    from aiohttp_session import get_session

    form = await request.post()
    session = await get_session(request)
    expected = session.get("signin_csrf")
    given = str(form.get(CSRF_FIELD, ""))
    from hookstream.core.access import same_token

    if not same_token(str(expected or ""), given):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")
    credentials = request.app[PRINCIPAL]
    token = str(form.get("token", "")).strip()
    if token:
        principal = await asyncio.to_thread(authenticate_token, credentials, token)
    else:
        principal = await asyncio.to_thread(
            authenticate_password,
            credentials,
            str(form.get("username", "")),
            str(form.get("password", "")),
        )
    if principal is None:
        response = aiohttp_jinja2.render_template(
            "signin.html",
            request,
            {
                "signin_csrf": await sign_in_token(request),
                "next": _safe_next(str(form.get("next", ""))),
                "error": "Unknown user, wrong password or unknown token.",
            },
        )
        response.set_status(401)
        return response
    await start_session(request, principal)
    raise web.HTTPSeeOther(_safe_next(str(form.get("next", ""))))


async def signout(request: web.Request) -> web.StreamResponse:
    from aiohttp_session import get_session

    (await get_session(request)).invalidate()
    raise web.HTTPSeeOther("/signin")


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/events"
    return value


# --- events ---


def _when(value: str | None) -> float | None:
    if not value:
        return None
    from hookstream.core.durations import parse_duration

    try:
        when = datetime.fromisoformat(value)
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except ValueError:
        pass
    try:
        return time.time() - parse_duration(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{value!r} is neither an ISO time nor a duration") from None


def _filter(request: web.Request) -> EventFilter:
    q = request.query
    state = q.get("state") or None
    if state is not None and state not in STATES:
        raise web.HTTPBadRequest(text=f"state must be one of {', '.join(STATES)}")
    return EventFilter(
        event_id=(q.get("q") or "").strip() or None,
        source=q.get("source") or None,
        event_type=q.get("type") or None,
        entity_id=q.get("entity") or None,
        state=state,
        destination=q.get("destination") or None,
        since=_when(q.get("since")),
        until=_when(q.get("until")),
    )


def _limit(request: web.Request) -> int:
    try:
        return max(1, min(int(request.query.get("limit", "50")), 500))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be a number") from None


@aiohttp_jinja2.template("events.html")
async def events_page(request: web.Request) -> dict[str, Any]:
    settings, holder = _app_parts(request)
    wanted = _filter(request)
    cursor = request.query.get("cursor") or None
    try:
        page, counts = await holder.read(
            lambda index: (
                index.search(wanted, limit=_limit(request), cursor=cursor),
                index.counts(wanted),
            )
        )
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    query = {k: request.query[k] for k in FILTERS if request.query.get(k)}
    others = {k: v for k, v in query.items() if k != "state"}
    return {
        "all_url": "/events?" + urlencode(others),
        "state_urls": {s: "/events?" + urlencode({**others, "state": s}) for s in STATES},
        "page": page,
        "counts": counts,
        "states": STATES,
        "query": query,
        "query_string": urlencode(others),
        "next_url": "/events?" + urlencode({**query, "cursor": page.next_cursor})
        if page.next_cursor
        else None,
        "sources": sorted(settings.sources),
        "destinations": sorted(settings.destinations),
    }


@aiohttp_jinja2.template("event.html")
async def event_page(request: web.Request) -> dict[str, Any]:
    settings, holder = _app_parts(request)
    source, event_id = request.match_info["source"], request.match_info["event_id"]
    found = await holder.read(lambda index: index.get(event_id, source))
    if not found:
        raise web.HTTPNotFound(text=f"no event {event_id} from {source} in the index")
    event = found[0]
    dead = await holder.read(lambda index: index.dead_letters(event_ids=[event_id]))
    dead = [d for d in dead if d.source == source]
    payload = await asyncio.to_thread(_payload, settings, event, dead)
    jaeger = settings.console.jaeger_url
    return {
        "event": event,
        "summary": event.summary(),
        "attempts": _attempts(event),
        "steps": event.show()["history"],
        "payload": payload,
        "dead": dead,
        "trace_url": f"{jaeger}/trace/{event.trace_id}" if event.trace_id else None,
    }


def _attempts(event: IndexedEvent) -> list[dict[str, Any]]:
    """The attempt steps, with a bar width for the timeline."""
    attempts = [s for s in event.steps if s.get("kind") == "attempt"]
    longest = max((float(a.get("duration_ms") or 0) for a in attempts), default=0.0) or 1.0
    return [
        {
            **a,
            "at_iso": datetime.fromtimestamp(float(a.get("at", 0)), UTC).isoformat(),
            "width": max(2, round(100 * float(a.get("duration_ms") or 0) / longest)),
        }
        for a in attempts
    ]


def _payload(settings: Any, event: IndexedEvent, dead: list[Any]) -> dict[str, Any]:
    """The event's body, read by offset from the events topic (or the DLQ): never its
    headers, which hold the sender's signature."""
    places = []
    if event.record_position is not None:
        places.append((settings.topics.events, event.record_position))
    places += [(dlq_topic(settings), (d.partition, d.offset)) for d in dead]
    for topic, position in places:
        try:
            record = read_at(settings, topic, [position]).get(position)
        except HookstreamError:
            continue
        if record is None:
            continue
        try:
            envelope = decode_envelope(record.value or b"")
        except EnvelopeError:
            return {"text": None, "note": "the record is not a readable envelope"}
        body = envelope.body.decode("utf-8", "replace")
        try:
            pretty = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
            return {"text": pretty, "json": True, "content_type": envelope.content_type}
        except ValueError:
            return {"text": body, "json": False, "content_type": envelope.content_type}
    return {"text": None, "note": "the payload is no longer in Kafka (retention)"}


async def api_events(request: web.Request) -> web.Response:
    _settings, holder = _app_parts(request)
    wanted = _filter(request)
    cursor = request.query.get("cursor") or None
    try:
        page = await holder.read(
            lambda index: index.search(wanted, limit=_limit(request), cursor=cursor)
        )
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response(
        {"items": [e.summary() for e in page.items], "next_cursor": page.next_cursor}
    )


async def api_event(request: web.Request) -> web.Response:
    _settings, holder = _app_parts(request)
    event_id = request.match_info["event_id"]
    source = request.query.get("source") or None
    found = await holder.read(lambda index: index.get(event_id, source))
    if not found:
        raise web.HTTPNotFound(text=f"no event {event_id} in the index")
    return web.json_response(found[0].show() if len(found) == 1 else [e.show() for e in found])


async def api_counts(request: web.Request) -> web.Response:
    _settings, holder = _app_parts(request)
    wanted = _filter(request)
    counts = await holder.read(lambda index: index.counts(wanted))
    return web.json_response(counts)


# --- the DLQ ---


def _dlq_query(request: web.Request) -> dict[str, Any]:
    return {
        "source": request.query.get("source") or None,
        "event_type": request.query.get("type") or None,
        "since": _when(request.query.get("since")),
    }


@aiohttp_jinja2.template("dlq.html")
async def dlq_page(request: web.Request) -> dict[str, Any]:
    settings, holder = _app_parts(request)
    wanted = _dlq_query(request)
    entries = await holder.read(lambda index: index.dead_letters(**wanted, limit=1000))
    total = await holder.read(lambda index: index.dead_letter_count())
    return {
        "entries": entries,
        "total": total,
        "query": {k: request.query[k] for k in ("source", "type", "since") if request.query.get(k)},
        "sources": sorted(settings.sources),
    }


async def dlq_redrive(request: web.Request) -> web.StreamResponse:
    from hookstream.ops.console.app import JOBS

    principal = require(request, Action.REDRIVE)
    _settings, holder = _app_parts(request)
    form = await request.post()
    positions = []
    for raw in form.getall("position", []):
        partition, _, offset = str(raw).partition("/")
        if partition.isdigit() and offset.isdigit():
            positions.append((int(partition), int(offset)))
    everything = form.get("all") == "matching"
    if everything:
        source = str(form.get("source") or "") or None
        event_type = str(form.get("type") or "") or None
        since = _when(str(form.get("since") or "") or None)
        matching = await holder.read(
            lambda index: index.dead_letters(source=source, event_type=event_type, since=since)
        )
        positions = [(d.partition, d.offset) for d in matching]
    if not positions:
        raise web.HTTPBadRequest(text="select at least one dead letter")
    live = {
        (d.partition, d.offset): d for d in await holder.read(lambda index: index.dead_letters())
    }
    chosen = [live[p] for p in positions if p in live]
    if form.get("confirm") != "yes":
        return aiohttp_jinja2.render_template(
            "confirm.html",
            request,
            {"chosen": chosen, "gone": len(positions) - len(chosen)},
        )
    job = request.app[JOBS].start(
        [(d.partition, d.offset) for d in chosen],
        [d.event_id or d.position for d in chosen],
        f"console:{principal.name}",
    )
    raise web.HTTPSeeOther(f"/dlq/jobs/{job.id}")


@aiohttp_jinja2.template("job.html")
async def job_page(request: web.Request) -> dict[str, Any]:
    from hookstream.ops.console.app import JOBS

    job = request.app[JOBS].get(request.match_info["job"])
    if job is None:
        raise web.HTTPNotFound(text="no such redrive (the console may have restarted)")
    return {"job": job}


async def api_job(request: web.Request) -> web.Response:
    from hookstream.ops.console.app import JOBS

    job = request.app[JOBS].get(request.match_info["job"])
    if job is None:
        raise web.HTTPNotFound(text="no such redrive")
    return web.json_response(job.to_json())


async def api_dlq(request: web.Request) -> web.Response:
    _settings, holder = _app_parts(request)
    wanted = _dlq_query(request)
    entries = await holder.read(lambda index: index.dead_letters(**wanted))
    return web.json_response([e.summary() for e in entries])


# --- destinations and lanes ---


@aiohttp_jinja2.template("destinations.html")
async def destinations_page(request: web.Request) -> dict[str, Any]:
    from hookstream.ops.console.app import WORKER

    shown = await request.app[WORKER].destinations()
    return {"rows": shown.rows, "error": shown.error, "message": request.query.get("message")}


async def destination_action(request: web.Request) -> web.StreamResponse:
    """Pause or resume a destination for every worker (the control topic, as `hookstream
    destinations pause|resume`), with an operator record of who did it."""
    from hookstream.ops.console.app import SETTINGS, WORKER
    from hookstream.ops.destinations import set_paused

    action = Action(request.match_info["action"])
    principal = require(request, action)
    settings = request.app[SETTINGS]
    name = request.match_info["name"]
    if name not in settings.destinations:
        raise web.HTTPNotFound(text=f"no destination {name}")
    by = f"console:{principal.name}"

    def act() -> None:
        set_paused(settings, name, action is Action.PAUSE)
        record_operator_action(settings, by, action.value, name)

    try:
        await request.app[WORKER].run(act)
    except HookstreamError as exc:
        raise web.HTTPServiceUnavailable(text=f"{action} {name} failed: {exc}") from None
    message = f"{'paused' if action is Action.PAUSE else 'resumed'} {name}: every worker applies it"
    raise web.HTTPSeeOther("/destinations?" + urlencode({"message": message + " within seconds"}))


@aiohttp_jinja2.template("lanes.html")
async def lanes_page(request: web.Request) -> dict[str, Any]:
    from hookstream.ops.console.app import WORKER

    shown = await request.app[WORKER].lanes()
    return {"lanes": shown.rows, "error": shown.error, "message": request.query.get("message")}


async def lane_release(request: web.Request) -> web.StreamResponse:
    """Release a lane held behind a dead-lettered event (as `hookstream lanes release`),
    with an operator record of who did it."""
    from hookstream.ops.console.app import SETTINGS, WORKER
    from hookstream.ops.lanes import NotHeld, release

    principal = require(request, Action.RELEASE)
    settings = request.app[SETTINGS]
    form = await request.post()
    source, entity = str(form.get("source", "")), str(form.get("entity", ""))
    if not source or not entity:
        raise web.HTTPBadRequest(text="name the lane's source and entity")
    by = f"console:{principal.name}"
    worker = request.app[WORKER]

    def act() -> int:
        lane = release(settings, source, entity, worker.lanes_reader)
        record_operator_action(
            settings, by, "release", f"{source}/{entity}", blocked_by=lane.state.blocked_by
        )
        return lane.state.parked

    try:
        parked = await worker.run(act)
    except NotHeld as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    except HookstreamError as exc:
        raise web.HTTPServiceUnavailable(text=f"release failed: {exc}") from None
    message = f"released {source}/{entity}: {parked} parked event(s) follow"
    raise web.HTTPSeeOther("/lanes?" + urlencode({"message": message}))


__all__ = ["add_routes", "page_context", "principal_of"]
