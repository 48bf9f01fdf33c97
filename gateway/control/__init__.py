"""The control plane: the admin API (snapshot, the vendor's v2 management paths, OpenAPI import/export).

May import: everything below `gateway.process`; never imported by lower layers.
"""
