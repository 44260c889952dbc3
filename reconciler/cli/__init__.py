"""The `roomctl` command line: one small module per command, each `run(args) -> int`."""
