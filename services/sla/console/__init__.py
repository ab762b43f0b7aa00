"""sla's ops console: the page at ``/console``, its data and the live stream ``/v1/stream``."""

from services.sla.console.api import router
from services.sla.console.stream import run_stream_feed

__all__ = ["router", "run_stream_feed"]
