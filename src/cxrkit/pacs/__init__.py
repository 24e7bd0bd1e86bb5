"""The DICOMweb loop of `cxr pacs run`: new films in, SR + heat-map overlay back to their study."""

from cxrkit.pacs.client import ENV_PASSWORD, ENV_TOKEN, ENV_USER, connect
from cxrkit.pacs.run import (
    Instance,
    RunSummary,
    find_instances,
    parse_modalities,
    parse_since,
    run_once,
)
from cxrkit.pacs.state import ProcessedStore

__all__ = [
    "ENV_PASSWORD",
    "ENV_TOKEN",
    "ENV_USER",
    "Instance",
    "ProcessedStore",
    "RunSummary",
    "connect",
    "find_instances",
    "parse_modalities",
    "parse_since",
    "run_once",
]
