"""Closed-door sessions (闭门私享会): curation, invitations, attendance and follow-up.

`models` holds the tables, `planner` the pure invite-list optimisation, `service` the
database operations the API calls, `exports` the roster/agenda CSV and the `.ics` file.
"""
