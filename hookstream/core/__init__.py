"""Pure decisions: no I/O, no event loop, `now` passed in."""
