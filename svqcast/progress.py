"""One progress protocol for every long library call (downloads, prepare, training, predict).

Library code reports through a `Progress`; the CLI passes its Rich adapter
(`svqcast.cli.progress`), Python callers pass nothing (silent) or their own object.
"""
