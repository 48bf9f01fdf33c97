"""Pure algorithms with no knowledge of the snapshot or the pipeline: the pooled HTTP/1.1 client, the
SDK-HMAC-SHA256 signing algorithm and its caller-side signer, IP range sets.

May import: `gateway.core`.
"""
