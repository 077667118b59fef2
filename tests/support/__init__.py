"""What the tests share: helpers and fixtures, imported by test modules and conftest files.

A test module imports from here, never from another test module
(``tests/unit/test_test_imports.py`` keeps it so).

- ``polling``: ``eventually``, the one poll with a deadline.
- ``service``: test settings, the service in the test's loop, ``streaming``, ``caught_up``.
- ``fixtures``: ``mongo``, ``service`` and ``taken_port``, for the conftest files.
- ``cli``: ``streamer`` as a child process: its environment, running and reading it.
- ``service_process``: ``streamer run`` as a child process to SIGKILL and restart.
- ``model``: traffic and the expected derived data, written apart from the service.
- ``replica_set``: the service's scenarios against a three-member mongosim set.
- ``secured``: mongosim with auth and TLS, and the least-privilege user's settings.
- ``tools``: external programs (promtool, prometheus, hadolint), skip or fail if missing.
"""
