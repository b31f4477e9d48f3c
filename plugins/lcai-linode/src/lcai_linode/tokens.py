"""Scoped, expiring Personal Access Tokens that lcai mints for one deployment alone (issue 23: an agent on the
instance that stops its own deployment), and their revocation.

- ``mint_token(client_or_api, label, scopes, expiry) -> (token_id, secret)``: ``POST /profile/tokens``. The
  scopes are the API's (``"linodes:read_write"``, a list of them, or ``"*"``); at most those of the token lcai
  uses (the API answers 400 otherwise). ``expiry``: an aware ``datetime`` (a naive one is taken as UTC), the
  API's date-time text, or None (never expires). A lost reply (a timeout, a reset, a 5xx after the API minted it)
  is never left behind: the tokens of that label that were not there before are revoked before it is minted again.
- ``revoke_token(client_or_api, token_id) -> bool``: ``DELETE /profile/tokens/{id}``, retried like every
  delete; False when it was already gone (404), which is not an error.

``client_or_api`` is the provider (``LinodeProvider``: its client and retry policy) or a linode_api4 client
(then the default retry policy). The secret is returned to the caller only: it is never logged, never said in a
retry line and never put in an exception message (the API's reasons and the label are).
"""

from __future__ import annotations

import re
from functools import partial
from datetime import datetime, timezone
from typing import Any, Iterable, Optional, Union

from lcai_core.api import InputError, LcaiError

from .api import ApiFailure, Retrier, describe, hopeless, resolve_url, retryable

SCOPE = re.compile(r"(\*|[a-z_]+:(read_only|read_write))\Z")
LABEL_MAX = 100  # the spec's maxLength of a token label
DATE = "%Y-%m-%dT%H:%M:%S"  # the API's date-time (UTC, no zone)


def _parts(client_or_api: Any) -> tuple[Any, Retrier]:
    """(linode_api4 client, retry policy) of the provider, or of a bare client."""
    if hasattr(client_or_api, "retrier") and hasattr(client_or_api, "client"):
        return client_or_api.client, client_or_api.retrier
    return client_or_api, Retrier()


def scope_text(scopes: Union[str, Iterable[str]]) -> str:
    """The API's ``scopes`` text (space-separated) from a text (spaces or commas) or a list; InputError (exit 2)
    naming the scope that is not ``*`` or ``product:read_only|read_write``."""
    words = re.split(r"[\s,]+", scopes.strip()) if isinstance(scopes, str) else [str(s).strip() for s in scopes]
    words = [w for w in words if w]
    if not words:
        raise InputError("token scopes: none given", hint="e.g. linodes:read_write (or * for all)")
    for w in words:
        if not SCOPE.match(w):
            raise InputError(f"token scopes: {w!r} is not '*' or product:read_only|read_write",
                             hint="e.g. linodes:read_write volumes:read_only")
    if "*" in words and len(words) > 1:
        raise InputError("token scopes: '*' (all) cannot be combined with other scopes")
    return " ".join(words)


def expiry_text(expiry: Union[datetime, str, None]) -> Optional[str]:
    if expiry is None or isinstance(expiry, str):
        return expiry
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=timezone.utc)
    return expiry.astimezone(timezone.utc).strftime(DATE)


def _refused(what: str, e: Any) -> Exception:
    from .provider import refused

    return refused(what, e)


def _ids_with_label(client: Any, retrier: Retrier, label: str) -> set[int]:
    """The ids of the active tokens with this label (``GET /profile/tokens``, every page)."""
    from linode_api4 import ApiError

    ids: set[int] = set()
    page, pages = 1, 1
    while page <= pages:
        path = f"/profile/tokens?page={page}&page_size=500"
        try:
            got = retrier.call("listing API tokens", partial(client.get, path, filters={"label": label}))
        except ApiError as e:
            raise _refused("listing API tokens", e) from None
        if not isinstance(got, dict):
            raise ApiFailure("listing API tokens: the Linode API answered something that is not an object")
        ids |= {t["id"] for t in got.get("data") or [] if isinstance(t, dict) and t.get("label") == label
                and isinstance(t.get("id"), int)}
        n = got.get("pages")
        pages = min(n, 100) if isinstance(n, int) else 1  # (a reply of 99999 pages is not followed to the end)
        page += 1
    return ids


def mint_token(client_or_api: Any, label: str, scopes: Union[str, Iterable[str]],
               expiry: Union[datetime, str, None]) -> tuple[int, str]:
    """Mint a token (``POST /profile/tokens``): its id and its secret, which the API shows this once."""
    from linode_api4 import ApiError

    if not isinstance(label, str) or not 1 <= len(label) <= LABEL_MAX:
        raise InputError(f"token label must be 1-{LABEL_MAX} characters")
    client, retrier = _parts(client_or_api)
    body = {"label": label, "scopes": scope_text(scopes), "expiry": expiry_text(expiry)}
    what = f"minting API token {label}"
    before: Optional[set[int]] = None  # the tokens of this label before the first attempt (read once)
    last: Optional[Exception] = None
    for attempt in range(retrier.attempts):
        if attempt:
            # a lost reply may have minted one: revoke what this label has now that it had not before
            for tid in _ids_with_label(client, retrier, label) - (before or set()):
                revoke_token(client_or_api, tid)
        elif before is None:
            before = _ids_with_label(client, retrier, label)
        try:
            got = client.post("/profile/tokens", data=body)
        except ApiError as e:
            if not retryable(e):
                raise _refused(what, e) from None
            last = e
        except ValueError:  # a 200 that is not JSON: say so without the body (it may hold the secret)
            last = ApiFailure(f"{what}: the Linode API answered with a body that is not JSON")
        except Exception as e:  # connection errors are retried (after the check above); anything else propagates
            if not retryable(e):
                raise
            why = hopeless(e)
            if why:
                raise ApiFailure(f"{what}: cannot reach the Linode API at {resolve_url()}: {why}",
                                 hint="check LCAI_LINODE_API_URL / your network") from None
            last = e
        else:
            new_id = got.get("id") if isinstance(got, dict) else None
            secret = got.get("token") if isinstance(got, dict) else None
            if isinstance(new_id, int) and not isinstance(new_id, bool) and isinstance(secret, str) and secret:
                return new_id, secret
            # never the body in the message: it may hold the secret
            last = ApiFailure(f"{what}: the Linode API answered without the token's id and secret")
        if attempt + 1 < retrier.attempts:
            d = retrier.delay(attempt, last)
            retrier.say(f"retrying: {what}: {describe(last)} (attempt {attempt + 1}/{retrier.attempts}; "
                        f"revoking first any token that attempt minted, next in {d:.1f}s)")
            retrier.sleep(d)
    hint = "the Linode API (or the network to it) may be degraded; try again in a minute"
    try:  # leave no orphan behind
        for tid in _ids_with_label(client, retrier, label) - (before or set()):
            revoke_token(client_or_api, tid)
    except LcaiError:
        hint = (f"a token labelled {label} may have been minted: revoke it (Cloud Manager, API Tokens, or "
                "`linode-cli profile token-delete ID`); " + hint)
    raise ApiFailure(f"{what} failed after {retrier.attempts} attempts: {describe(last)}" if last else what,
                     hint=hint)


def revoke_token(client_or_api: Any, token_id: int) -> bool:
    """Revoke a token at once (``DELETE /profile/tokens/{id}``): True, or False when it was already gone."""
    from linode_api4 import ApiError

    if not isinstance(token_id, int) or isinstance(token_id, bool):
        raise InputError(f"token id must be a number, not {token_id!r}")
    client, retrier = _parts(client_or_api)
    what = f"revoking API token {token_id}"
    try:
        retrier.call(what, lambda: client.delete(f"/profile/tokens/{token_id}"))
        return True
    except ApiError as e:
        if e.status == 404:
            return False
        raise _refused(what, e) from None
