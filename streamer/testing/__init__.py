"""Test support shipped with streamer: the mongosim replica set."""
