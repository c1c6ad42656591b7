"""The `sql` connector: staging tables (中间表) read by cursor column and upserted by key."""

from erphub.connectors.sql.connector import SqlConnector
from erphub.connectors.sql.settings import SqlEntitySettings, SqlSettings

__all__ = ["SqlConnector", "SqlEntitySettings", "SqlSettings"]
