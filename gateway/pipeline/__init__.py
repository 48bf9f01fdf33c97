"""The request pipeline: the stage contract (`spec`), one module per stage (`stages/`), the ordered list of
stages (`chain`, THE place that says what runs when) and the request handler (`handle`).
Inside: `spec` < `stages` < `chain`, `handle` (import-linter contract); `handle` never imports `spec` or
`chain` (request time sees no configuration).

May import: `gateway.backends`, `gateway.model`, `gateway.snapshot`, `gateway.lib`, `gateway.core`.
"""
