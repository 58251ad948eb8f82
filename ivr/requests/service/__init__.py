"""The request service: every write to a callback request, with its side effects, in one place.

Each function writes the rows and then, visibly and in the same transaction, queues what the
write calls for: the staff alerts (when they go out is decided by `alerts.py` alone), the copy
of a recording, a text to the family, a call-back. There are no signals: what a write sets off is
read in the function that makes it. Views (`ivr/voice`, `ivr/staff`) call these functions and
the read functions of `requests/lookup.py`; they never write a request's rows themselves.

- `callers.py`: what a call writes, step by step (the recording, the callback number, the
  A-number, urgency, a message added by calling again, the reference by text), and the replay
  of what the fallback kept while the database was down;
- `handling.py`: what staff do with a request (notes, status, claims, call-backs and their
  outcomes, listening, exports, erasing).
"""
