"""What several services import: settings, event schemas, the bus, DB models, taxonomy."""
