"""The use cases (extract, train, score), the ports they drive, the composition root that
wires adapters to them, and one function per scheduled task."""
