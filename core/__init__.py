"""What every layer stands on and that needs no database: settings, the exception tree, the
queue names and the one secret scrubber (:mod:`core.redaction`).  Nothing here imports
another package of ours."""
