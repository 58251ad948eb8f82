"""The edge: what every request passes before a view sees it (signatures, body limits, https)."""
