"""The grader's sandbox: learner code in a confined process, the verdict in the grader's.

- :mod:`~ldkkit.sandbox.source` reads a workbook without running it: its cells, its
  handler, the names its ``check`` calls are given, and whether the handler is a copy;
- :mod:`~ldkkit.sandbox.jail` confines the learner process (another user, namespaces,
  limits) and kills what it leaves behind;
- :mod:`~ldkkit.sandbox.wire` is the only language the two processes share: JSON
  envelopes and the kit's strict encoding, never pickle or eval;
- :mod:`~ldkkit.sandbox.child` is the learner process; :mod:`~ldkkit.sandbox.bridge` and
  :mod:`~ldkkit.sandbox.worker` are the grader's side.
"""
