"""A strict local stand-in for Metrilo's v2 API, for tests, the demo, benchmarks and staging.

It checks what Metrilo checks (paths, size, X-Digest, envelope, token, every record against
`cdc_sync.core.validate`), keeps records with Metrilo's merge semantics, marks orders Metrilo would
drop, and injects faults on request. Nothing here runs at import time.
"""

from cdc_sync.errors import FaultsError, SandboxError, SandboxStoreError
from cdc_sync.sandbox.faults import Fault, Faults
from cdc_sync.sandbox.sandbox import Sandbox
from cdc_sync.sandbox.store import SandboxStore

__all__ = [
    "Fault",
    "Faults",
    "FaultsError",
    "Sandbox",
    "SandboxError",
    "SandboxStore",
    "SandboxStoreError",
]
