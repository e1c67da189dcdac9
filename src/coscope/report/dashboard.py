"""``coscope dashboard``: a live web page of one or more running campaigns (FastAPI).

The server reads each trace read-only (:mod:`coscope.report.live_state`,
:mod:`coscope.report.live_maps`) and posts the page's interventions and approval answers to
the campaign's inbox exactly as ``coscope intervene`` and ``coscope approve`` do (validated
first, signed with the campaign's token, which the server's user — the campaign's owner —
can read); the campaign's loop takes them between steps and records them in the trace.

The page authenticates with a random secret made at launch (like Jupyter's token): every
``/api`` request carries it, in the ``X-Coscope-Token`` header (posts: only there, so a form
on another site cannot post) or as ``?token=`` (the page itself and its map images). The
server binds 127.0.0.1 unless told otherwise. Endpoints (JSON unless noted):

==============================================  =============================================
``GET /?token=T``                               the page (HTML)
``GET /api/campaigns``                          ``[{index, store, name}]``
``GET /api/campaigns/{i}/state``                :func:`~coscope.report.live_state.snapshot`
                                                plus ``maps`` (what the picture shows)
``GET /api/campaigns/{i}/maps.png?v=N``         the maps (PNG); 404 before the first
``POST /api/campaigns/{i}/intervene``           ``{kind, payload, why}`` → ``{posted, payload}``
``POST /api/campaigns/{i}/answer``              ``{step, action: approve|reject, reason?}``
==============================================  =============================================

Bad requests get ``{"error": one sentence}`` with 400 (invalid intervention), 403 (no or
wrong token), 404 (no such campaign) or 503 (the trace could not be read this time).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from coscope.approve_requests import describe_answer, post_answer
from coscope.errors import CoscopeError
from coscope.report.live_maps import MapRenderer
from coscope.report.live_state import LiveState
from coscope.steer_requests import MAX_PAYLOAD_CHARS, post_intervention

PAGE = "dashboard.html"
"""The page (package data beside this module)."""
TOKEN_HEADER = "X-Coscope-Token"
WHO = "dashboard"
"""Recorded as what posted a request on the user's behalf: ``dashboard (OS user alice)``."""


@dataclass
class Watched:
    """One campaign the dashboard shows."""

    store: Path
    state: LiveState
    maps: MapRenderer


def new_token() -> str:
    """A fresh per-launch secret for the page's URL (32 random bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


MAX_BODY_BYTES = 4 * MAX_PAYLOAD_CHARS
"""A posted body larger than this is refused unread."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> Any:
    """The posted JSON (None when it is not JSON or too large)."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def create_app(
    stores: list[Path],
    token: str,
    *,
    map_interval_s: float = 5.0,
    poll_ms: int = 2000,
    allow_user_code: bool = False,
) -> FastAPI:
    """The dashboard's application for the traces ``stores`` (each already checked to be a
    readable trace), guarded by ``token``.

    Args:
        stores: Trace folders, shown in this order.
        token: The secret every request must carry.
        map_interval_s: Seconds between two map refits of one campaign at least.
        poll_ms: How often the page asks for the state, milliseconds.
        allow_user_code: Let map refits run user code the traces name.
    """
    page_html = resources.files("coscope.report").joinpath(PAGE).read_text(encoding="utf-8")
    page_html = page_html.replace("__POLL_MS__", str(int(poll_ms)))
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coscope-maps")
    watched = [
        Watched(
            s,
            LiveState(s),
            MapRenderer(
                s, min_interval_s=map_interval_s, allow_user_code=allow_user_code, pool=pool
            ),
        )
        for s in stores
    ]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="coscope dashboard",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )

    def authorised(request: Request, *, header_only: bool = False) -> bool:
        given = request.headers.get(TOKEN_HEADER)
        if given is None and not header_only:
            given = request.query_params.get("token")
        return given is not None and hmac.compare_digest(given.encode(), token.encode())

    def campaign(index: int) -> Watched | None:
        return watched[index] if 0 <= index < len(watched) else None

    async def posted(index: int, request: Request) -> tuple[Watched | Response, Any]:
        """The campaign a post is for and its JSON body, or the refusal to answer."""
        if not authorised(request, header_only=True):
            return _error(403, f"posts need the access token in the {TOKEN_HEADER} header."), None
        w = campaign(index)
        if w is None:
            return _error(404, f"no campaign {index}: this dashboard shows {len(watched)}."), None
        return w, await _body(request)

    async def sent(post: Any, *args: Any, **kwargs: Any) -> tuple[Path, Any] | Response:
        """``post(*args, **kwargs)`` off the event loop; a CoscopeError as a 400 sentence."""
        try:
            return await run_in_threadpool(post, *args, **kwargs)
        except CoscopeError as exc:
            return _error(400, " ".join(str(exc).split()))

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> Response:
        if not authorised(request):
            return HTMLResponse(
                "<p>coscope dashboard: open the URL that <code>coscope dashboard</code> printed "
                "(it carries the access token).</p>",
                status_code=403,
            )
        return HTMLResponse(page_html)

    @app.get("/api/campaigns")
    def campaigns(request: Request) -> Response:
        if not authorised(request):
            return _error(403, "missing or wrong access token.")
        out = []
        for k, w in enumerate(watched):
            try:
                name = w.state.get()["status"]["campaign"]
            except CoscopeError:
                name = w.store.name
            out.append({"index": k, "store": str(w.store), "name": name})
        return JSONResponse(out)

    @app.get("/api/campaigns/{index}/state")
    def state(index: int, request: Request) -> Response:
        if not authorised(request):
            return _error(403, "missing or wrong access token.")
        w = campaign(index)
        if w is None:
            return _error(404, f"no campaign {index}: this dashboard shows {len(watched)}.")
        try:
            data = dict(w.state.get())
        except CoscopeError as exc:
            return _error(503, str(exc))
        w.maps.request(data["status"]["measurements"]["total"])
        rendered = w.maps.current()
        data["maps"] = {
            "version": -1 if rendered is None else rendered.n_measurements,
            "ready": rendered is not None and bool(rendered.png),
            "model_version": None if rendered is None else rendered.model_version,
            "rmse": None if rendered is None else rendered.rmse,
            "seconds": None if rendered is None else rendered.seconds,
            "error": "" if rendered is None else rendered.error,
            "busy": w.maps.busy,
            "rmse_history": [list(p) for p in w.maps.history],
        }
        return JSONResponse(data)

    @app.get("/api/campaigns/{index}/maps.png")
    def maps(index: int, request: Request) -> Response:
        if not authorised(request):
            return _error(403, "missing or wrong access token.")
        w = campaign(index)
        rendered = None if w is None else w.maps.current()
        if rendered is None or not rendered.png:
            return _error(404, "no maps yet: the first model is being rebuilt from the trace.")
        return Response(rendered.png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.post("/api/campaigns/{index}/intervene")
    async def intervene(index: int, request: Request) -> Response:
        w, body = await posted(index, request)
        if isinstance(w, Response):
            return w
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
            return _error(400, 'post a JSON object {"kind": ..., "payload": {...}, "why": ...}.')
        payload = body.get("payload") or {}
        if not isinstance(payload, dict):
            return _error(400, 'the payload must be a JSON object, e.g. {"name": "ucb"}.')
        why = str(body.get("why") or "")
        done = await sent(post_intervention, w.store, body["kind"], payload, why=why, who=WHO)
        if isinstance(done, Response):
            return done
        return JSONResponse({"posted": done[0].name, "kind": body["kind"], "payload": done[1]})

    @app.post("/api/campaigns/{index}/answer")
    async def answer(index: int, request: Request) -> Response:
        w, body = await posted(index, request)
        if isinstance(w, Response):
            return w
        if not isinstance(body, dict) or body.get("action") not in ("approve", "reject"):
            return _error(400, 'post {"step": N, "action": "approve" | "reject", "reason": ...}.')
        step = body.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            return _error(400, 'name the waiting step as an integer, e.g. {"step": 7}.')
        reason = str(body.get("reason") or "")
        payload: dict[str, Any] = {"step": step, "action": body["action"]}
        if body["action"] == "reject":
            payload["reason"] = reason
        done = await sent(post_answer, w.store, payload, why=reason, who=WHO)
        if isinstance(done, Response):
            return done
        return JSONResponse({"posted": done[0].name, "answer": describe_answer(done[1])})

    app.state.watched = watched
    return app
