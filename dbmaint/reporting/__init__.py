"""`dbmaint report`: one self-contained HTML page of what dbmaint did and what it watches, per database.

``data`` gathers the figures from history into plain values (pure apart from the store reads), ``html``
renders them (pure; templates and the vendored chart library are package data), ``build`` runs the live
checklists and writes the page atomically: what the command and the service's scheduled page call.
"""
