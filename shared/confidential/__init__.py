"""A pitch's confidential part (financials, contact, attachments) and its staged disclosure.

`fields` holds the input models (imported by `shared.models`, so it imports nothing of it);
`models` the tables; `service` who may see what, and when.
"""
