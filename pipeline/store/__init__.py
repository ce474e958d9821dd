"""The edges that keep state: the history database and the ledger of files."""
