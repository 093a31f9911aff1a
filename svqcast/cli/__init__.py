"""The `svqcast` command line: parsing, printing and exit codes only (no logic)."""
