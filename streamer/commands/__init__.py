"""The ``streamer`` command and each subcommand: the top layer, which nothing imports."""
