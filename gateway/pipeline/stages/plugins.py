"""The vendor's plug-ins (seed 002 §3.27; spec 02 §8): ``plugins`` + ``plugin_bindings`` enforced on requests.

Role in the pipeline: importing this package registers the collections' schemas and checks
(:mod:`~gateway.snapshot.plugins`) and each implemented type: ``cors`` (endpoint CORS handler),
``set_resp_headers`` (endpoint response hook), ``breaker`` (backend-plan target wrapper), ``third_auth``
(order-40 stage + backend request hook). ``rate_limit`` is compiled by the throttling package
(:mod:`gateway.pipeline.stages.throttling.plugin`, order-70 stage). ``kafka_log`` acts after the response
(:mod:`gateway.observe.kafka_log`, a completion hook; see docs/plugins.md).
"""

from __future__ import annotations

from gateway.pipeline.stages import breaker, cors, resp_headers, third_auth
from gateway.snapshot import plugins as registry

__all__ = ["breaker", "cors", "registry", "resp_headers", "third_auth"]
