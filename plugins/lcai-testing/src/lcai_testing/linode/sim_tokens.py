"""Personal Access Tokens in the Linode API simulator, faithful to the OpenAPI document (4.189.0).

``POST /profile/tokens`` ``{label, scopes, expiry}`` mints a token: 200 with the token, its secret (``token``) in
full in this reply only; ``GET /profile/tokens`` (paged and filterable like the other lists; the active tokens:
an expired one is left out) and ``GET /profile/tokens/{id}`` show only its first 16 characters;
``DELETE /profile/tokens/{id}`` revokes it at once (its next request answers 401).

Scopes are the API's: ``*``, or a list of ``product:read_only`` / ``product:read_write`` separated by spaces
(commas are taken too); ``read_write`` implies ``read_only``. ``scopes`` omitted or ``*`` gives the new token the
scopes of the token that asks; scopes beyond those are refused (400, field ``scopes``), and so is an ``expiry``
in the past (400, field ``expiry``; ``null`` or omitted: never expires). Minting needs ``account:read_write``,
listing ``account:read_only``, as each operation of the spec says.

Every request made with a minted token is checked before it is routed: expired or revoked → 401 ``Invalid
Token``; an operation that needs a scope the token lacks → 401 (``REQUIRED``: the scopes of the spec's
``security`` for each operation the simulator serves; ``GET /regions``, ``/linode/types``, ``/volumes/types`` need
none, ``GET /profile`` any valid token; a path of no known product needs ``*``). The simulator's own token
(``--token``, ``sim-token``) has ``*`` and works exactly as before; it is not listed and cannot be revoked.

Expiry is read from the simulator's wall clock (``State.wall_clock()``: the real time plus ``clock_offset_s``),
which tests move with ``POST /_sim/clock {"advance_s": 3600}`` (or ``{"offset_s": N}``) instead of sleeping;
``/_sim/reset`` sets it back. Only token dates use it.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional, Union

from .sim_validate import error

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import Handler, State

# the OAuth scopes of the spec (components.securitySchemes.oauth): each product's read_only and read_write,
# except vpc (read_write only)
PRODUCTS = ("account", "domains", "events", "firewall", "images", "ips", "linodes", "lke", "longview",
            "nodebalancers", "object_storage", "stackscripts", "volumes", "vpc")
READ_WRITE_ONLY = ("vpc",)
SECRET_SHOWN = 16  # "only the first 16 characters are returned" after the create reply
LABEL_MAX = 100
DATE = "%Y-%m-%dT%H:%M:%S"

Scopes = Union[str, frozenset]  # "*" (everything) or the set of "product:level" the token holds

# (method or "*" for any, path pattern, scopes the operation needs): the spec's `security` of each operation the
# simulator serves. The first match wins; None: no token scope needed (any valid token, or the public endpoints).
_ID = r"[^/]+"
REQUIRED: list[tuple[str, str, Optional[tuple[str, ...]]]] = [
    ("GET", r"/regions(/[^/]+)?", None),
    ("GET", r"/linode/types(/[^/]+)?", None),
    ("GET", r"/volumes/types", None),
    ("GET", r"/nodebalancers/types", None),
    ("GET", r"/profile", None),
    ("PUT", r"/profile", ("account:read_write",)),
    ("GET", r"/profile/tokens(/[^/]+)?", ("account:read_only",)),
    ("*", r"/profile/tokens(/[^/]+)?", ("account:read_write",)),
    ("GET", r"/profile(/.*)?", ("account:read_only",)),
    ("*", r"/profile(/.*)?", ("account:read_write",)),
    ("GET", r"/account/events(/.*)?", ("events:read_only",)),
    ("*", r"/account/events(/.*)?", ("events:read_write",)),
    ("GET", r"/account(/.*)?", ("account:read_only",)),
    ("*", r"/account(/.*)?", ("account:read_write",)),
    ("GET", r"/linode/instances(/.*)?", ("linodes:read_only",)),
    ("*", r"/linode/instances(/.*)?", ("linodes:read_write",)),
    ("GET", r"/networking/firewalls(/.*)?", ("firewall:read_only",)),
    ("*", r"/networking/firewalls(/.*)?", ("firewall:read_write",)),
    ("GET", r"/nodebalancers(/.*)?", ("nodebalancers:read_only",)),
    ("*", r"/nodebalancers(/.*)?", ("nodebalancers:read_write",)),
    ("POST", rf"/volumes/{_ID}/(attach|detach)", ("volumes:read_write", "linodes:read_write")),
    ("GET", r"/volumes(/.*)?", ("volumes:read_only",)),
    ("*", r"/volumes(/.*)?", ("volumes:read_write",)),
    ("GET", r"/images(/.*)?", ("images:read_only",)),
    ("*", r"/images(/.*)?", ("images:read_write",)),
]
UNKNOWN = ("*",)  # a path of no product above: only a token with every scope


def _api():
    from . import simulator

    return simulator


def _fail(status: int, reason: str, field: Optional[str] = None):
    return _api().ApiError(status, reason, field)


def wall_now(st: "State") -> datetime:
    """The simulator's wall clock (UTC, whole seconds): the real time moved by ``clock_offset_s``."""
    from datetime import timedelta

    now = st.wall_clock() + timedelta(seconds=st.clock_offset_s)
    return now.astimezone(timezone.utc).replace(microsecond=0)


def required(method: str, path: str) -> Optional[tuple[str, ...]]:
    """The scopes an operation needs (None: none beyond a valid token)."""
    method = "GET" if method == "HEAD" else method
    for m, pattern, scopes in REQUIRED:
        if m in ("*", method) and re.fullmatch(pattern, path):
            return scopes
    return UNKNOWN


def parse_scopes(text: Any, field: str = "scopes") -> Scopes:
    """``*`` or a set of ``product:level`` (``read_write`` also grants ``read_only``); 400 on anything else."""
    if not isinstance(text, str) or not text.strip():
        raise _fail(400, "scopes must be '*' or a space-separated list of product:read_only|read_write", field)
    words = [w for w in re.split(r"[\s,]+", text.strip()) if w]
    if "*" in words:
        if len(words) > 1:
            raise _fail(400, "'*' cannot be combined with other scopes", field)
        return "*"
    held: set[str] = set()
    for w in words:
        product, _, level = w.partition(":")
        if product not in PRODUCTS or level not in ("read_only", "read_write") or \
                (product in READ_WRITE_ONLY and level == "read_only"):
            raise _fail(400, f"Invalid scope {w!r}: expected product:read_only or product:read_write with a product "
                             f"of {', '.join(PRODUCTS)}", field)
        held.add(w)
        if level == "read_write" and product not in READ_WRITE_ONLY:
            held.add(f"{product}:read_only")
    return frozenset(held)


def grants(held: Scopes, needed: Optional[tuple[str, ...]]) -> bool:
    if needed is None or held == "*":
        return True
    return "*" not in needed and all(s in held for s in needed)


def _parse_expiry(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _fail(400, "expiry must be a date-time (e.g. 2030-01-01T13:46:32) or null", "expiry")
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _fail(400, f"expiry {value!r} is not a date-time (e.g. 2030-01-01T13:46:32)", "expiry") from None
    if when.tzinfo is None:  # the API's dates are UTC without a zone
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).replace(microsecond=0)


def authorize(st: "State", method: str, path: str, auth: str) -> Scopes:
    """The scopes of the request's token, or 401 in the API's envelope (unknown, revoked, expired, out of scope)."""
    if auth == f"Bearer {st.token}":
        return "*"  # the simulator's own token: everything, as it always had
    secret = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
    tok = next((t for t in st.tokens.values() if secret and secrets.compare_digest(t["_secret"], secret)), None)
    if tok is None or expired(st, tok):
        raise _fail(401, "Invalid Token")
    if not grants(tok["_scopes"], required(method, path)):
        raise _fail(401, "Your OAuth token is not authorized to use this endpoint.")
    return tok["_scopes"]


def expired(st: "State", tok: dict) -> bool:
    return tok["_expiry"] is not None and wall_now(st) >= tok["_expiry"]


def public(tok: dict, secret_in_full: bool = False) -> dict:
    shown = tok["_secret"] if secret_in_full else tok["_secret"][:SECRET_SHOWN]
    return {**{k: v for k, v in tok.items() if not k.startswith("_")}, "token": shown}


def create(h: "Handler", b: Any, acting: Scopes) -> dict:
    st = h.state
    if not isinstance(b, dict):
        raise _fail(400, "Request body must be an object")
    errs = []
    label = b.get("label")
    if not isinstance(label, str) or not 1 <= len(label) <= LABEL_MAX:
        errs.append(error("label", f"Label must be 1-{LABEL_MAX} characters"))
    want: Scopes = acting
    if b.get("scopes") is not None:
        asked = parse_scopes(b["scopes"])
        want = acting if asked == "*" else asked  # '*': "the same scopes as the acting token"
        if isinstance(acting, frozenset) and not (isinstance(want, frozenset) and want <= acting):
            beyond = " ".join(sorted(set(want) - acting))
            errs.append(error("scopes", f"Cannot grant scopes beyond those of the acting token: {beyond}"))
    expiry = None
    if b.get("expiry") is not None:
        expiry = _parse_expiry(b["expiry"])
        if expiry <= wall_now(st):
            errs.append(error("expiry", "Expiry must be in the future"))
    _api()._raise(errs)
    tid = st.new_id()
    # the shown scopes: what was asked (normalized), read_only implied by read_write left implicit
    shown = "*" if want == "*" else " ".join(
        s for s in sorted(want) if not (s.endswith(":read_only") and s.replace(":read_only", ":read_write") in want))
    tok = {"id": tid, "label": label, "scopes": shown, "created": wall_now(st).strftime(DATE),
           "expiry": expiry.strftime(DATE) if expiry else None,
           "_secret": secrets.token_hex(32), "_scopes": want, "_expiry": expiry}
    st.tokens[tid] = tok
    return public(tok, secret_in_full=True)


def snapshot(st: "State") -> list[dict]:
    """For ``GET /_sim/state``: the tokens as a later GET shows them (never a secret), with ``expired``."""
    return [dict(public(t), expired=expired(st, t)) for t in st.tokens.values()]


def route(h: "Handler", method: str, path: str, query: dict, body: Any,
          acting: Scopes = "*") -> Optional[tuple[int, Any]]:
    st = h.state
    if path == "/profile/tokens":
        if method == "GET":
            return h._list([public(t) for t in st.tokens.values() if not expired(st, t)], query)
        if method == "POST":
            return 200, create(h, body, acting)
        return None
    g = re.fullmatch(r"/profile/tokens/([^/]+)", path)
    if not g:
        return None
    tok = st.tokens.get(int(g.group(1))) if g.group(1).isdigit() else None
    if tok is None:
        raise _fail(404, "Not found")
    if method == "GET":
        return 200, public(tok)
    if method == "PUT":
        if not isinstance(body, dict):
            raise _fail(400, "Request body must be an object")
        if "label" in body:
            if not isinstance(body["label"], str) or not 1 <= len(body["label"]) <= LABEL_MAX:
                raise _fail(400, f"Label must be 1-{LABEL_MAX} characters", "label")
            tok["label"] = body["label"]
        return 200, public(tok)
    if method == "DELETE":
        del st.tokens[tok["id"]]
        return 200, {}
    return None


def control_clock(st: "State", body: Any) -> dict:
    """``GET|POST /_sim/clock``: ``{"advance_s": N}`` moves the wall clock N seconds on, ``{"offset_s": N}`` sets
    its offset from the real time; answers ``{"now": ..., "offset_s": ...}``."""
    if body is not None:
        if not isinstance(body, dict):
            raise _fail(400, "body must be an object: {\"advance_s\": seconds} or {\"offset_s\": seconds}")
        for k in ("advance_s", "offset_s"):
            if k in body and (isinstance(body[k], bool) or not isinstance(body[k], (int, float))):
                raise _fail(400, f"{k} must be a number of seconds", k)
        if "offset_s" in body:
            st.clock_offset_s = float(body["offset_s"])
        if "advance_s" in body:
            st.clock_offset_s += float(body["advance_s"])
    return {"now": wall_now(st).strftime(DATE), "offset_s": st.clock_offset_s}
