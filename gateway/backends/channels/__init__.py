"""VPC channels: load-balanced backend member sets with active and passive health checking.

Role in the pipeline: an HTTP backend with ``vpc_channel_status: 1`` forwards through a
:class:`gateway.backends.channels.upstream.ChannelUpstream` (step 17 of spec 02 §11.2, member selection).
Submodules: :mod:`.schema` (the ``vpc_channels`` collection and its checks), :mod:`.state` (per-member
health state that survives config swaps), :mod:`.health` (the background checker owned by the
long-lived services; told the members by ``reconcile(members)``), :mod:`.upstream` (balance strategies).
See docs/channels.md.

May import: what `gateway.backends` may import.
"""
