"""Background work: the job queue (a table in the app's database) and the worker that runs it."""
