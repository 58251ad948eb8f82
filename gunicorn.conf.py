"""Gunicorn settings for the Procfile's `web:` (gunicorn reads this file from the working folder).

Worker model: `gthread`, several threads per process. Sync workers serve one request at a time, so
one slow client (a staff member's phone on a bad connection uploading a form) holds a whole
process while Twilio's webhooks queue behind it; Heroku's router does not buffer requests the way
nginx would. With threads, a slow client holds one thread, and the bodies are small and capped
(MAX_CONTENT_LENGTH). The app does no network I/O in a request (background work is queued, see
ivr/jobs.py), so threads never wait on Twilio; async workers (gevent) would buy nothing more and
would need monkey-patching of psycopg. Threads per process are bounded by WEB_THREADS.
"""

from ivr.settings import ServerSettings, load

# The few settings the server needs, parsed by the same rules and defaults as the app's
# (ivr/settings.py; `ivr settings` lists them).
server = load(cls=ServerSettings)

bind = f"0.0.0.0:{server.port}"
workers = server.web_concurrency
worker_class = "gthread"
threads = server.web_threads
# Accept only as many connections as there are threads: the rest wait in the shared listen queue
# for any process, so a process that dies (kill -9, out of memory) takes down only the calls it was
# serving (bench/burst.py --fault kill-web: 4 callers lost instead of 27-118 with the default 1000).
worker_connections = threads
# Twilio gives up on a webhook after 15 s; a request still running after 20 s is stuck.
timeout = 20
graceful_timeout = 25  # within Heroku's 30 s between SIGTERM and SIGKILL
# Each connection is closed after its answer: an idle kept-alive connection would hold one of the
# few accepted connections (worker_connections) that a request could use.
keepalive = 0
accesslog = "-"
# Restart workers now and then so a slow leak in any library cannot grow without bound.
max_requests = 5000
max_requests_jitter = 500


def post_worker_init(worker):
    """One-dyno set-up: with WORKER_IN_WEB=1 each web process also runs the background jobs."""
    if server.worker_in_web:
        from ivr.background.worker import Background

        Background(worker.wsgi).start()
