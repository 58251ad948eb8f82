"""What the firm learns from its hotline: anonymous call events, their figures, the weekly summary.

`events` records each step of a call without anything a person could be found by; `figures`
turns events, requests and their history into the Reports page's aggregates; `tasks` declares
the jobs (settling events, the weekly e-mail). The page itself is `ivr/staff/reports.py`.
"""
