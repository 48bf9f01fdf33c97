"""The request pipeline: the stage contract (`spec`), one module per stage (`stages/`), the ordered list of
stages (`chain`) and the request handler (`handle`).

May import: `gateway.backends`, `gateway.model`, `gateway.snapshot`, `gateway.lib`, `gateway.core`.
"""
