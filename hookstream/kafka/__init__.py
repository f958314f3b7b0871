"""hookstream's Kafka layer: the connection model, topic layout and admin, reading a topic.

It sits between the pure core and the processes (ingress, worker, ops): it may import
`hookstream.core`, `hookstream.config` and `hookstream.errors`, never anything above them.
"""
