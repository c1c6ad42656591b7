"""The store's migrations form one line: two branches merged without re-pointing would leave two heads."""

from alembic.config import Config
from alembic.script import ScriptDirectory

from erphub.store.db import MIGRATIONS


def test_one_head_and_every_revision_on_one_line() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [max(rev.revision for rev in script.walk_revisions())]
    assert all(len(rev.nextrev) <= 1 for rev in script.walk_revisions())
