"""A DICOMweb client for a PACS endpoint, authenticated from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cxrkit.errors import CxrkitError

#: Bearer token (OAuth2 / OIDC access token) for the DICOMweb endpoint.
ENV_TOKEN = "CXR_PACS_TOKEN"
#: HTTP basic authentication user and password.
ENV_USER = "CXR_PACS_USER"
ENV_PASSWORD = "CXR_PACS_PASSWORD"


def connect(url: str, env: Mapping[str, str] | None = None, timeout: float = 60.0) -> Any:
    """A `dicomweb_client.DICOMwebClient` for `url` (the DICOMweb root, e.g. .../dicom-web).

    Authentication comes from the environment, never from arguments (they would end up in
    shell histories and process lists): `CXR_PACS_TOKEN` for a bearer token, else
    `CXR_PACS_USER` + `CXR_PACS_PASSWORD` for basic auth, else none.
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
        session.headers["Authorization"] = f"Bearer {token}"
    elif user:
        password = env.get(ENV_PASSWORD)
        if password is None:
            raise CxrkitError(f"{ENV_USER} is set but {ENV_PASSWORD} is not")
        session.auth = (user, password)
    # every request times out (a dead PACS must not hang a batch); 429/408/503 are
    # retried 3 times with exponential backoff (the client's own retry policy)
    client = DICOMwebClient(url=url.rstrip("/"), session=session, timeout=timeout)
    client.set_http_retry_params(max_attempts=3)
    return client
