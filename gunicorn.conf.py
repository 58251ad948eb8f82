"""Gunicorn settings for the Procfile's `web:` (gunicorn reads this file from the working folder).

gunicorn runs the processes (WEB_CONCURRENCY of them, restarted when one dies or after
max_requests, drained on SIGTERM); each process is uvicorn's asyncio HTTP server
(ivr/edge/server.py), which reads every request whole, with header and body deadlines, before one
of WEB_THREADS threads runs the Flask app on it. A slow or hostile client then holds a socket, not
a thread: with gunicorn's own threaded workers, 8 connections sending a byte every 5 s left no
thread to answer Twilio (README, "Deploying"; bench/slowclients.py).
"""

from ivr.settings import ServerSettings, load

# The few settings the server needs, parsed by the same rules and defaults as the app's
# (ivr/settings.py; `ivr settings` lists them).
server = load(cls=ServerSettings)

bind = f"0.0.0.0:{server.port}"
workers = server.web_concurrency
worker_class = "ivr.edge.server.Worker"
# The threads of each process that run the app (a2wsgi's pool). Requests reach them whole, and no
# request waits on the network (that is the worker's job), so a few are enough.
threads = server.web_threads
# The heartbeat: a process whose event loop is stuck this long is replaced. Twilio gives up on a
# webhook after 15 s.
timeout = 20
# SIGTERM (a restart, a deploy, scaling down): stop accepting, finish the requests in progress,
# close idle connections, exit; gunicorn kills what is left after this, within Heroku's 30 s.
graceful_timeout = 25
# Keep-alive off: every answer says `Connection: close` (ivr/edge/server.py) and the connection
# ends with it. Heroku's Router 2.0 keeps idle connections to a dyno up to 90 s and reuses them; a
# server that closed an idle one by its own timeout could meet a request the router sent at that
# moment (the caller would get an error), so the server must either keep them longer than 90 s or
# tell the router not to keep them at all. Off is chosen because each request then arrives on a new
# connection, which a process takes only while a thread is free (Gate): requests wait in the listen
# queue that all processes share, not behind a busy process, and a process that is killed loses
# only what it was serving. A new connection from the router costs a local TCP handshake.
keepalive = 0
accesslog = "-"
# Restart workers now and then so a slow leak in any library cannot grow without bound.
max_requests = 5000
max_requests_jitter = 500


def post_worker_init(worker):
    """One-dyno set-up: with WORKER_IN_WEB=1 each web process also runs the background jobs."""
    if server.worker_in_web:
        from ivr.background.worker import Background

        Background(worker.flask_app).start()
