"""Write: the outbox's workbooks and reports, every cell through one safe writer."""
