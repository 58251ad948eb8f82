"""Staff accounts and the audit log: who may do what, and what they did."""
