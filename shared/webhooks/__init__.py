"""Outgoing webhooks: signing, URL safety, the tables, the event catalogue and the bodies.

The delivery engine lives in `services/notifier/delivery.py`; the API in
`services/api/routes/webhooks.py`. Everything here is importable without Kafka or HTTP.
"""
