"""Request throttling and credential quotas (seed 002 §3.4, §3.8, §3.9, §3.29; spec 02 §1, §2, §6).

Modules: :mod:`.resources` (snapshot schemas and cross-reference checks), :mod:`.plan` (compile policies
into per-publication check lists), :mod:`.plugin` (the rate_limit plug-in), :mod:`.store` (the in-process
counter store), :mod:`.redis_store` (the shared Redis store), :mod:`.service` (store selection and Redis
failure policy), :mod:`.stage` (the request stage). See docs/throttling.md.

May import: what `gateway.pipeline.stages` may import.
"""
