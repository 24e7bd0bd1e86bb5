"""A DICOMweb client for a PACS endpoint, authenticated from the environment, with retries.

`connect` builds the `dicomweb_client.DICOMwebClient` (credentials from the environment,
refused over plain HTTP to another host); `PacsClient` wraps it for the PACS loop: every
request is retried on connection errors and 5xx answers with capped exponential backoff,
and what still fails is a `PacsError` saying whether trying later may help.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cxrkit.errors import CxrkitError

#: Bearer token (OAuth2 / OIDC access token) for the DICOMweb endpoint.
ENV_TOKEN = "CXR_PACS_TOKEN"
#: HTTP basic authentication user and password.
ENV_USER = "CXR_PACS_USER"
ENV_PASSWORD = "CXR_PACS_PASSWORD"

#: HTTP answers worth asking again: timeouts, rate limits, server-side errors.
RETRY_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))

T = TypeVar("T")


def is_loopback(url: str) -> bool:
    """True when `url`'s host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect(
    url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    allow_insecure: bool = False,
) -> Any:
    """A `dicomweb_client.DICOMwebClient` for `url` (the DICOMweb root, e.g. .../dicom-web).

    Authentication comes from the environment, never from arguments (they would end up in
    shell histories and process lists): `CXR_PACS_TOKEN` for a bearer token, else
    `CXR_PACS_USER` + `CXR_PACS_PASSWORD` for basic auth, else none. A bearer token is
    refused over plain `http://` (anyone on the path could read and reuse it) unless the
    host is loopback or `allow_insecure` is set; for basic auth over plain HTTP,
    `cleartext_credentials` says what a caller should warn about. The client's own
    retries are off: `PacsClient` retries (dicomweb-client would resend a STOW from an
    exhausted generator).
    """
    try:
        import requests
        from dicomweb_client.api import DICOMwebClient
    except ImportError as exc:
        raise CxrkitError(
            f"the PACS loop needs dicomweb-client ({exc}): pip install 'cxrkit[dicom]'"
        ) from exc
    env = os.environ if env is None else env
    if not url.startswith(("http://", "https://")):
        raise CxrkitError(f"url={url!r}: give the DICOMweb root as http(s)://host[:port]/path")
    session = requests.Session()
    token, user = env.get(ENV_TOKEN), env.get(ENV_USER)
    if token:
        _check_transport(url, ENV_TOKEN, allow_insecure)
        session.headers["Authorization"] = f"Bearer {token}"
    elif user:
        password = env.get(ENV_PASSWORD)
        if password is None:
            raise CxrkitError(f"{ENV_USER} is set but {ENV_PASSWORD} is not")
        session.auth = (user, password)
    # every request times out (a dead PACS must not hang a batch)
    client = DICOMwebClient(url=url.rstrip("/"), session=session, timeout=timeout)
    client.set_http_retry_params(retry=False)
    return client


def cleartext_credentials(url: str, env: Mapping[str, str] | None = None) -> str | None:
    """The variable whose secret would cross the network in clear text to `url` (plain
    http:// to another host), or None."""
    env = os.environ if env is None else env
    if not url.startswith("http://") or is_loopback(url):
        return None
    if env.get(ENV_TOKEN):
        return ENV_TOKEN
    return ENV_PASSWORD if env.get(ENV_USER) else None


def _check_transport(url: str, what: str, allow_insecure: bool) -> None:
    """Refuse credentials over plain HTTP to another machine (unless told it is fine)."""
    if url.startswith("http://") and not allow_insecure and not is_loopback(url):
        host = urlsplit(url).hostname
        raise CxrkitError(
            f"{what} would go to {host} over plain http://, readable by anyone on the way: "
            "use an https:// URL, or allow_insecure=True if this network is trusted"
        )


class PacsError(CxrkitError):
    """A DICOMweb request that failed for good; `transient`: trying later may work."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient, self.status = transient, status


class ServerUnreachable(PacsError):
    """No connection to the server, even after the retries: nothing else will work now."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries per request; waits of `base_s`, doubling, at most `cap_s` each."""

    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 8.0

    def delays(self) -> Iterator[float]:
        """The waits between attempts (one fewer than the attempts)."""
        for k in range(max(0, self.attempts - 1)):
            yield min(self.cap_s, self.base_s * 2**k)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a `requests.HTTPError` (None for anything else)."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def reason(exc: BaseException) -> str:
    """'HTTPError: 503 Server Error ...': the exception's type and first line, bounded
    ('ConnectionError: Connection refused' rather than urllib3's whole retry story)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        text = errno.group(1).strip()
    return f"{type(exc).__name__}: {text}"[:300]


class PacsClient:
    """The loop's view of the server: QIDO, WADO, STOW and a "is it stored?" check.

    Connection errors, timeouts and answers 408 / 429 / 5xx are retried per `retry`;
    anything else (401, 404, a payload that does not parse) fails at once. After the last
    attempt a connection failure raises `ServerUnreachable`, an HTTP error `PacsError`.
    """

    def __init__(
        self,
        client: Any,
        retry: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.client, self.retry = client, retry or RetryPolicy()
        self.sleep, self.log = sleep, log
        self.retries = 0  # requests sent again, for the summary

    def search_instances(
        self, filters: dict[str, str], fields: list[str], offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """One QIDO-RS page of instances."""
        return self._call(
            "QIDO-RS",
            lambda: self.client.search_for_instances(
                search_filters=filters, fields=fields, offset=offset, limit=limit
            ),
        )

    def retrieve(self, study: str, series: str, sop: str) -> Any:
        """One instance (WADO-RS), as a pydicom Dataset."""
        return self._call("WADO-RS", lambda: self.client.retrieve_instance(study, series, sop))

    def store(self, datasets: Sequence[Any], study: str) -> None:
        """STOW-RS `datasets` into `study`; an instance the server lists as failed raises."""
        answer = self._call(
            "STOW-RS",
            lambda: self.client.store_instances(list(datasets), study_instance_uid=study),
        )
        failed = getattr(answer, "FailedSOPSequence", None) or []
        if failed:
            uids = ", ".join(str(item.get("ReferencedSOPInstanceUID", "?")) for item in failed)
            raise PacsError(f"STOW-RS: the server did not store {uids}", transient=True)

    def existing(self, study: str, sop_uids: Sequence[str]) -> set[str]:
        """Which of `sop_uids` the server has in `study` (QIDO-RS, one query per UID)."""
        found: set[str] = set()
        for uid in sop_uids:
            hits = self._call(
                "QIDO-RS",
                lambda uid=uid: self.client.search_for_instances(
                    study_instance_uid=study, search_filters={"SOPInstanceUID": uid}
                ),
            )
            if any(uid in (h.get("00080018", {}).get("Value") or []) for h in hits):
                found.add(uid)
        return found

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        import requests

        delays = self.retry.delays()
        attempt = 1
        while True:
            try:
                return fn()
            except (requests.ConnectionError, requests.Timeout) as exc:
                status, error = None, exc
            except requests.HTTPError as exc:
                status, error = http_status(exc), exc
                if status not in RETRY_STATUS:
                    raise PacsError(
                        f"{what}: {reason(exc)}", transient=False, status=status
                    ) from exc
            wait = next(delays, None)
            if wait is None:
                message = f"{what}: {reason(error)} (after {attempt} attempts)"
                if status is None:
                    raise ServerUnreachable(message) from error
                raise PacsError(message, transient=True, status=status) from error
            if self.log is not None:
                self.log(
                    f"{what}: {reason(error)}; retrying in {wait:g} s "
                    f"(attempt {attempt + 1} of {self.retry.attempts})"
                )
            self.retries += 1
            self.sleep(wait)
            attempt += 1
