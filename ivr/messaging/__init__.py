"""Reaching people outside the call: the Twilio gateway and the e-mail sender."""
