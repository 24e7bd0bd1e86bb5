"""The DICOMweb loop of `cxr pacs run`: new films in, SR + heat-map overlay back to their study.

Names are imported on first use (`cxrkit.lazy`).
"""

from __future__ import annotations

from cxrkit.lazy import lazy_exports

_EXPORTS = {
    "ENV_PASSWORD": "client",
    "ENV_TOKEN": "client",
    "ENV_USER": "client",
    "PacsClient": "client",
    "PacsError": "client",
    "RetryPolicy": "client",
    "ServerUnreachable": "client",
    "cleartext_credentials": "client",
    "connect": "client",
    "is_loopback": "client",
    "Instance": "run",
    "RunSummary": "run",
    "find_instances": "run",
    "make_pool": "run",
    "parse_modalities": "run",
    "parse_since": "run",
    "run_once": "run",
    "ProcessedStore": "state",
    "ResultUids": "uids",
    "result_uids": "uids",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
