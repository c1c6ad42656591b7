"""The ground floor: the vocabulary every other part of erphub shares, importing nothing of erphub.

    records      Record, Page, Cursor, WriteRequest/WriteResult, EntitySpec: what flows through a pipeline
    errors       the one error tree (drawn in its docstring), grouped by what the engine does with each
    outcomes     Stage, ErrorClass, Outcome: the dead-letter stages and classes, and what a run counts
    yamlsource   YAML with line and column numbers, so any file error can point at its place
"""
