"""The names a run reports and the dead-letter store keeps: stages, dead-letter error classes, outcomes.

StrEnums whose values are the very strings already stored and printed: a member compares equal to,
hashes like and serialises as its plain string, so the store, JSON output and metrics do not change.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """The step at which a record stopped: a dead letter's `stage`."""

    MAP = "map"
    WRITE = "write"
    WRITE_BACK = "write_back"
    INBOX = "inbox"


class ErrorClass(StrEnum):
    """Why a record became a dead letter: its `error_class`."""

    MAPPING_REJECTED = "MappingRejected"  # the mapping refused the record (or crashed on it)
    TARGET_TRANSIENT = "TargetTransient"  # the target refused it for now (retry by replay)
    TARGET_REJECTED = "TargetRejected"    # the target refused it for good
    SOURCE_REJECTED = "SourceRejected"    # the source refused the write-back of the target's number
    INBOX_GAVE_UP = "InboxGaveUp"         # a pushed event whose delivery kept failing
    KEY_CONFLICT = "KeyConflict"          # two source records map to one target key: never merged


class Outcome(StrEnum):
    """What a run counts per record (run counts, metrics, the CLI's columns), in display order."""

    READ = "read"
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    DEAD_LETTERED = "dead_lettered"


OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
