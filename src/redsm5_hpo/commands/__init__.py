"""What a user runs on a study once it exists: ``status``, ``ui``, ``verify`` / ``sync``, ``report``,
``evaluate``, ``export``, ``predict``, ``rollback`` and ``cleanup``, and the console text of a study's answer.

Each module is one command's work, called by ``redsm5_hpo.cli``; they read what the study wiring
(``redsm5_hpo.pipeline``) wrote and never run a study themselves.
"""
