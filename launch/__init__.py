"""Reverie launch: how processes start and connect."""
