"""The vendor's v2 management paths (``/v2/{project_id}/apigw/instances/{instance_id}/...``).

Role: control plane, off the request path. Tools written for the APIG v2 API can create, change, list and
delete the run-time resources of this gateway:

- :mod:`.resources` declares every collection, binding and reference as data;
- :mod:`.crud` and :mod:`.bindings` are the generic handlers over those tables;
- :mod:`.publish`, :mod:`.apps`, :mod:`.plugins`, :mod:`.channels` are the special actions;
- :mod:`.app` is the route table.

Every change builds a new document and pushes it through :meth:`gateway.control.store.DocumentStore.apply`,
exactly like ``PUT /v1/snapshot``: validated and compiled in a worker thread, swapped atomically, a new
version id. A change that makes the document invalid answers 400 with every problem (paths relative to the
changed resource) and changes nothing. Deletes cascade the way the vendor's do. ``project_id`` and
``instance_id`` are accepted and ignored: one gateway is one instance.
"""

PREFIX = "/v2/{project_id}/apigw/instances/{instance_id}"
