"""Pure algorithms and clients with no knowledge of the snapshot or the pipeline: the pooled HTTP/1.1 and
HTTP/2 clients, the SDK-HMAC-SHA256 signing algorithm and its caller-side signer, IP range sets, TLS
contexts, Redis connections, listener sites.

May import: `gateway.core`.
"""
