"""The stream processor: a Faust app whose agents dedupe and deliver each event once."""
