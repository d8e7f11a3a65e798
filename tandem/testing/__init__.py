"""Test support shared by the test suite, the load tool and the benchmark: real processes, raw clients.

Nothing here is imported by the server. The modules, each imported on its own:

- ``harness``: `tandem serve` as a real subprocess (`ServerProcess`), several of them on one Redis
  (`Deployment`), health checks, kill -9 and restart, `free_port` and small HTTP helpers;
- ``wire``: `Raw`, a blocking WebSocket client that says exactly what a well-behaved one would not;
- ``proxy``: a round-robin TCP balancer that cuts connections, and a Redis reply cutter;
- ``cluster``: a real three-master Redis Cluster;
- ``load``, ``audit``, ``bot``: a load run of editing clients and the audit of every acknowledged edit;
- ``refserver``, ``scenarios``: an in-memory reference server, and recorded client runs on it
  (the client vectors the JavaScript client replays);
- ``strategies``: hypothesis strategies for documents and ops (needs the ``test`` extra);
- ``chromium``: where the system Chromium is, for the browser tests and the screenshot.
"""
