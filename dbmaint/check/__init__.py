"""`dbmaint check`: the database checklist."""
