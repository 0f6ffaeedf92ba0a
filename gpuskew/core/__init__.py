"""The engine: a validated Book, flat arrays, group identity, the fixed reduction plan, backends
and the one-pass pricing of every position (``compute``)."""
