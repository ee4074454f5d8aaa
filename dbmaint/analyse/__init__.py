"""Pure analysis: collected records in, findings and planned actions out. No I/O."""
