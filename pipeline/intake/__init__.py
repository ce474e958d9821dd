"""Intake: any file a clerk left in the inbox to located, identified sheets."""
