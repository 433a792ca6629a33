"""The root of every error salon raises on purpose."""


class SalonError(Exception):
    """Base class: callers can catch everything salon raises deliberately."""


class ConfigurationError(SalonError):
    """Settings are missing, contradictory or unsafe."""


class BusError(SalonError):
    """The message bus could not do what was asked (wraps kafka-python errors)."""


class PoisonMessageError(SalonError):
    """A message can never be handled (bad JSON, unknown schema); it goes to the DLQ."""


class NotFoundError(SalonError):
    """An entity does not exist, or the caller may not know that it exists."""
