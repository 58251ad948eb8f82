"""The floor for the benchmark: a minimal Flask app that returns fixed TwiML, nothing else."""

from flask import Flask, Response

app = Flask(__name__)
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/voice/es/menu/choice" '
    'numDigits="1"><Say language="es-US">Menú principal.</Say></Gather></Response>'
)


@app.post("/<path:anything>")
@app.post("/")
def fixed(anything: str = "") -> Response:
    return Response(TWIML, mimetype="text/xml")
